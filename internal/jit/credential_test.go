package jit

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func basic(s string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseSessionCredential(t *testing.T) {
	const id = "s-abcdefghijklmnop"
	tests := []struct {
		name    string
		header  string
		wantID  string
		wantSec string
	}{
		{name: "valid", header: basic(id + ":sekret"), wantID: id, wantSec: "sekret"},
		{name: "scheme is case-insensitive", header: "basic " + base64.StdEncoding.EncodeToString([]byte(id+":x")), wantID: id, wantSec: "x"},
		{name: "colon in secret", header: basic(id + ":a:b"), wantID: id, wantSec: "a:b"},
		{name: "empty", header: ""},
		{name: "bearer", header: "Bearer " + id},
		{name: "no space", header: "Basic"},
		{name: "bad base64", header: "Basic !!!"},
		{name: "no colon", header: basic(id)},
		{name: "empty secret", header: basic(id + ":")},
		{name: "not a session id", header: basic("alice:pw")},
		{name: "upper-case id", header: basic(strings.ToUpper(id) + ":x")},
		{name: "overlong secret", header: basic(id + ":" + strings.Repeat("x", 257))},
		{name: "overlong header", header: "Basic " + strings.Repeat("A", 600)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			gotID, gotSec, err := ParseSessionCredential(tt.header)
			if tt.wantID == "" {
				if !errors.Is(err, ErrMalformedCredential) {
					t.Fatalf("ParseSessionCredential() error = %v, want ErrMalformedCredential", err)
				}
				return
			}
			if err != nil || gotID != tt.wantID || gotSec.Reveal() != tt.wantSec {
				t.Errorf("ParseSessionCredential() = %q, %q, %v; want %q, %q", gotID, gotSec.Reveal(), err, tt.wantID, tt.wantSec)
			}
		})
	}
}

func FuzzParseSessionCredential(f *testing.F) {
	f.Add(basic("s-abcdefghijklmnop:secret"))
	f.Add("Basic czphYmM6")
	f.Add("bearer x")
	f.Add("")
	f.Fuzz(func(t *testing.T, header string) {
		id, sec, err := ParseSessionCredential(header)
		if err != nil {
			if id != "" || !sec.IsZero() {
				t.Fatal("values returned with an error")
			}
			if err != ErrMalformedCredential {
				t.Fatalf("error %q is not the constant ErrMalformedCredential: it could echo the header", err)
			}
			return
		}
		if !sessionIDPattern.MatchString(id) || sec.IsZero() || len(sec.Reveal()) > maxSessionSecret {
			t.Fatalf("accepted id %q with a secret of %d bytes", id, len(sec.Reveal()))
		}
	})
}
