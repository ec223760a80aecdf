package sink

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// maxSanitized is how many characters of an answer Sanitize keeps.
const maxSanitized = 200

// Sanitize makes text from an endpoint's answer (which may hold anything)
// safe to put in an error: invalid UTF-8 becomes '?', every occurrence of
// tok becomes "[redacted]" should the endpoint echo it, each run of white
// space and characters that do not print becomes one space, and the result
// is trimmed and cut to 200 characters, followed by "..." when cut. A zero
// tok redacts nothing. It returns "" for nil or all-blank b.
func Sanitize(b []byte, tok secret.Value) string {
	s := strings.ToValidUTF8(string(b), "?")
	if !tok.IsZero() {
		s = strings.ReplaceAll(s, tok.Reveal(), "[redacted]")
	}
	s = strings.Map(func(r rune) rune {
		if !unicode.IsPrint(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) > maxSanitized {
		s = string([]rune(s)[:maxSanitized]) + "..."
	}
	return s
}
