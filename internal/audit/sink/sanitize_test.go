package sink

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/secret"
)

func TestSanitize(t *testing.T) {
	const tok = "canary-token-7a3c"
	for _, tt := range []struct {
		name string
		in   string
		tok  secret.Value
		want string
	}{
		{name: "nothing", in: "", tok: tok, want: ""},
		{name: "plain", in: "bad request", tok: tok, want: "bad request"},
		{name: "token echoed", in: "refused Bearer " + tok + " and " + tok, tok: tok, want: "refused Bearer [redacted] and [redacted]"},
		{name: "zero token redacts nothing", in: "refused " + tok, tok: "", want: "refused " + tok},
		{name: "invalid UTF-8", in: "a\xff\xfeb", tok: tok, want: "a?b"},
		{name: "control characters", in: "a\x00b\x1bc\u200bd", tok: tok, want: "a b c d"},
		{name: "lines and runs of space", in: "  <html>\r\n\t<body>\u00a0 x  </body>\n", tok: tok, want: "<html> <body> x </body>"},
		{name: "200 characters kept", in: strings.Repeat("ü", 200), tok: tok, want: strings.Repeat("ü", 200)},
		{name: "cut at 200 characters", in: strings.Repeat("ü", 201), tok: tok, want: strings.Repeat("ü", 200) + "..."},
		{name: "token before the cut", in: strings.Repeat("x", 190) + tok, tok: tok, want: strings.Repeat("x", 190) + "[redacted]"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := Sanitize([]byte(tt.in), tt.tok); got != tt.want {
				t.Errorf("Sanitize(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

// FuzzSanitize feeds answers as an endpoint might send them: what goes
// into an error never shows the token, is one printable line and is
// short.
func FuzzSanitize(f *testing.F) {
	const tok = "canary-token-fuzz-4e1a"
	f.Add([]byte("refused " + tok))
	f.Add([]byte("<html>\n\t<body>\x00\xff" + tok[:5] + "</body>"))
	f.Add([]byte(strings.Repeat("ünïcode ", 100)))
	f.Fuzz(func(t *testing.T, body []byte) {
		s := Sanitize(body, secret.Value(tok))
		if strings.Contains(s, tok) && !strings.Contains(string(body), tok) {
			t.Fatalf("Sanitize made up the token: %q", s)
		}
		if strings.Contains(s, tok) {
			t.Fatalf("Sanitize kept the token: %q", s)
		}
		if strings.ContainsAny(s, "\n\r\x00") || !utf8.ValidString(s) || utf8.RuneCountInString(s) > 203 {
			t.Fatalf("Sanitize gave %q", s)
		}
	})
}
