package secret

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
)

func TestValueNeverPrints(t *testing.T) {
	const raw = "canary-8f3b2c"
	v := Value(raw)
	type wrapper struct {
		Token Value `json:"token"`
	}
	var logBuf bytes.Buffer
	slog.New(slog.NewJSONHandler(&logBuf, nil)).Info("msg", "token", v, "wrapped", wrapper{v})
	jsonOut, err := json.Marshal(wrapper{v})
	if err != nil {
		t.Fatal(err)
	}
	text, err := v.MarshalText()
	if err != nil {
		t.Fatal(err)
	}
	outputs := map[string]string{
		"%v":    fmt.Sprintf("%v", v),
		"%s":    fmt.Sprintf("%s", v),
		"%+v":   fmt.Sprintf("%+v", wrapper{v}),
		"%#v":   fmt.Sprintf("%#v", v),
		"%q":    fmt.Sprintf("%q", v),
		"json":  string(jsonOut),
		"text":  string(text),
		"slog":  logBuf.String(),
		"error": fmt.Errorf("mint: %v", v).Error(),
	}
	for name, out := range outputs {
		if strings.Contains(out, raw) {
			t.Errorf("%s output %q contains the secret", name, out)
		}
	}
	if got := v.Reveal(); got != raw {
		t.Errorf("Reveal() = %q, want %q", got, raw)
	}
}

func TestEqual(t *testing.T) {
	tests := []struct {
		name string
		a, b Value
		want bool
	}{
		{name: "same", a: "abc", b: "abc", want: true},
		{name: "different", a: "abc", b: "abd", want: false},
		{name: "prefix", a: "abc", b: "ab", want: false},
		{name: "both empty", a: "", b: "", want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Equal(tt.b); got != tt.want {
				t.Errorf("Equal() = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRandomIsUnique(t *testing.T) {
	a, b := Random(32), Random(32)
	if a.Equal(b) || len(a.Reveal()) != 43 {
		t.Errorf("Random(32) gave %d chars, equal=%v", len(a.Reveal()), a.Equal(b))
	}
}
