package approvalpage

import (
	"bytes"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"golang.org/x/net/html"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// FuzzWritePage: whatever the people and agents behind a request write
// (names, reasons, comments, IDs), the page parses to exactly the
// elements and attributes writePage writes, and each value is read back
// as it was given: no value can add markup, an attribute or a script.
func FuzzWritePage(f *testing.F) {
	for _, s := range []string{"plain", `<script>alert(1)</script>`, `" onmouseover="x`, `'><img src=x>`, "&amp;", "</textarea><!--", "a\x00b"} {
		f.Add(s, s)
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		if !utf8.ValidString(a) || !utf8.ValidString(b) || strings.ContainsRune(a+b, 0) || strings.ContainsRune(a+b, '\r') {
			t.Skip("HTML parsers rewrite NUL, CR and invalid UTF-8 by design; the values jitproxy stores are checked printable text")
		}
		at := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
		page := func(a, b string) *view {
			return &view{Name: a, Groups: []string{b}, CSRF: b, Error: a,
				Pending: []pendingView{{ID: b, User: a, Agent: b, Session: a, Policy: b, Target: a, Namespace: b,
					Permissions: []string{a}, Reason: a, CreatedAt: at, PendingUntil: at,
					Approvals: []jit.Decision{{By: b, Comment: a}}, Waiting: b}},
				Recent: []decisionView{{GrantID: a, Policy: b, User: a, Verb: "approved", By: b, Comment: a, At: at}},
			}
		}
		// The same page with harmless values, empty where a value is (an
		// empty value leaves its part out).
		harmless := func(s string) string {
			if s == "" {
				return ""
			}
			return "x"
		}
		v, safe := page(a, b), page(harmless(a), harmless(b))
		got, want := shape(t, writePage(v)), shape(t, writePage(safe))
		if got != want {
			t.Fatalf("the values changed the page's elements or attributes:\ngot  %s\nwant %s", got, want)
		}
		doc, err := html.Parse(bytes.NewReader(writePage(v)))
		if err != nil {
			t.Fatal(err)
		}
		if text := textOf(doc); !strings.Contains(text, a) || !strings.Contains(text, b) {
			t.Errorf("the values are not read back as given: %q, %q in %q", a, b, text)
		}
	})
}

// shape lists the element and attribute names of a page, in order.
func shape(t *testing.T, page []byte) string {
	t.Helper()
	var b strings.Builder
	z := html.NewTokenizer(bytes.NewReader(page))
	for {
		switch z.Next() {
		case html.ErrorToken:
			return b.String()
		case html.StartTagToken, html.SelfClosingTagToken, html.EndTagToken:
			tok := z.Token()
			b.WriteString(" " + tok.Type.String() + ":" + tok.Data)
			for _, a := range tok.Attr {
				b.WriteString("[" + a.Key + "]")
			}
		case html.CommentToken:
			b.WriteString(" comment")
		}
	}
}

func textOf(n *html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		if n.Type == html.ElementNode {
			for _, a := range n.Attr {
				b.WriteString(a.Val)
			}
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return b.String()
}
