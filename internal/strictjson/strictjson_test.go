package strictjson

import (
	"errors"
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
	tests := []struct {
		in       string
		maxDepth int
		want     error // a *RepeatedKeyError is compared by key
	}{
		{in: `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`},
		{in: `[1,"a","a",{"x":"a","y":"a"}]`},
		{in: `"just a string"`},
		{in: `{"a":1,"a":2}`, want: &RepeatedKeyError{Key: "a"}},
		{in: `{"a":{"b":1},"a":2}`, want: &RepeatedKeyError{Key: "a"}},
		{in: `{"a":[1,{"x":1,"x":2}]}`, want: &RepeatedKeyError{Key: "x"}},
		{in: `{"spec":{"hostPID":false,"hostPID":true}}`, want: &RepeatedKeyError{Key: "hostPID"}},
		{in: `{"a":"b","b":"a"}`}, // a value equal to a name is not a name
		{in: `{"a":1`, want: ErrInvalid},
		{in: `{"a":1} {"b":2}`, want: ErrTrailing},
		{in: strings.Repeat("[", 5) + strings.Repeat("]", 5), maxDepth: 4, want: ErrTooDeep},
		{in: strings.Repeat("[", 5) + strings.Repeat("]", 5), maxDepth: 0},
	}
	for _, tt := range tests {
		err := Check([]byte(tt.in), tt.maxDepth)
		var got, want *RepeatedKeyError
		switch {
		case errors.As(tt.want, &want):
			if !errors.As(err, &got) || got.Key != want.Key {
				t.Errorf("Check(%s) = %v, want %v", tt.in, err, tt.want)
			}
		case !errors.Is(err, tt.want):
			t.Errorf("Check(%s) = %v, want %v", tt.in, err, tt.want)
		}
	}
}

func FuzzCheck(f *testing.F) {
	for _, s := range []string{`{"a":1,"a":2}`, `[{"a":{"b":[1,2]}}]`, `{"a":"a"}`, `{`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := Check([]byte(s), 32)
		var rk *RepeatedKeyError
		if err != nil && !errors.As(err, &rk) && !errors.Is(err, ErrInvalid) && !errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrTrailing) {
			t.Fatalf("Check(%q) = %v: not one of the documented errors", s, err)
		}
	})
}
