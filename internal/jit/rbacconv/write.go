package rbacconv

import (
	"fmt"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Write writes ps to w as one YAML stream that jit.ParsePolicies reads:
// each policy a document, headed by comments naming the binding it came
// from and what its credential needs. It returns the first write error.
func Write(w io.Writer, ps []Policy) error {
	var b strings.Builder
	for i, p := range ps {
		if i > 0 {
			b.WriteString("---\n")
		}
		fmt.Fprintf(&b, "# Converted from %s.\n", oneLine(p.Source))
		if len(p.Setup) > 0 {
			b.WriteString("# Its credential needs:\n")
			for _, s := range p.Setup {
				fmt.Fprintf(&b, "#   %s\n", oneLine(s))
			}
		}
		b.Write(p.YAML)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// oneLine keeps a comment on its line and readable: what is not a
// printable character becomes "?".
func oneLine(s string) string {
	return strings.Map(func(r rune) rune {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
