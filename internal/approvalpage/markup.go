package approvalpage

import (
	"bytes"
	"html"
	"net/url"
	"strings"
	"time"
)

// The page is written with markup rather than html/template: a binary
// that links text/template keeps every exported method of every type
// (template calls methods by name, so the linker cannot drop any), which
// made jitproxy 38 MB larger and its resident memory 22 MB more under
// load. markup escapes every value it is given, so what it writes is as
// safe as the contexts it allows: element text and double-quoted
// attribute values; names of elements and attributes are constants of
// this package.
type markup struct{ b bytes.Buffer }

// raw writes s as it is: constant markup of this package only.
func (m *markup) raw(s string) { m.b.WriteString(s) }

// text writes s escaped as element text.
func (m *markup) text(s string) { m.b.WriteString(html.EscapeString(s)) }

// open writes a start tag; attrs are name, value pairs, each value escaped
// in double quotes.
func (m *markup) open(tag string, attrs ...string) {
	m.b.WriteString("<" + tag)
	for i := 0; i+1 < len(attrs); i += 2 {
		m.b.WriteString(" " + attrs[i] + `="` + html.EscapeString(attrs[i+1]) + `"`)
	}
	m.b.WriteString(">")
}

// close writes an end tag.
func (m *markup) close(tag string) { m.b.WriteString("</" + tag + ">") }

// elem writes an element holding only text.
func (m *markup) elem(tag, text string, attrs ...string) {
	m.open(tag, attrs...)
	m.text(text)
	m.close(tag)
}

// grantPath is the path of a grant's decision, its ID escaped as a path
// segment.
func grantPath(id, verb string) string {
	return "/ui/grants/" + url.PathEscape(id) + "/" + verb
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

const pageHead = `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>jitproxy approvals</title>
<link rel="stylesheet" href="/ui/style.css">
</head>
<body>
`

// writePage writes the approval page of v.
func writePage(v *view) []byte {
	m := &markup{}
	m.raw(pageHead)
	m.raw("<header>\n<h1>jitproxy approvals</h1>\n")
	m.open("p", "class", "who")
	m.raw("Signed in as ")
	m.elem("strong", v.Name, "id", "user")
	if len(v.Groups) > 0 {
		m.text(" (" + strings.Join(v.Groups, ", ") + ")")
	}
	m.close("p")
	m.raw("\n")
	m.open("form", "method", "post", "action", "/ui/logout", "class", "logout")
	m.open("input", "type", "hidden", "name", "csrf", "value", v.CSRF)
	m.raw(`<button type="submit" id="logout">Sign out</button></form>` + "\n</header>\n<main>\n")
	if v.Error != "" {
		m.elem("p", v.Error, "class", "error", "id", "error", "role", "alert")
		m.raw("\n")
	}
	m.raw("<section>\n<h2>Pending requests you may approve</h2>\n")
	for _, r := range v.Pending {
		writeRequest(m, &r, v.CSRF)
	}
	if len(v.Pending) == 0 {
		m.raw(`<p class="empty" id="no-pending">Nothing is waiting for you.</p>` + "\n")
	}
	m.raw("</section>\n<section>\n<h2>Recent decisions</h2>\n")
	if len(v.Recent) == 0 {
		m.raw(`<p class="empty">No decisions yet.</p>` + "\n")
	} else {
		m.raw(`<table id="recent">` + "\n<thead><tr><th>When</th><th>Grant</th><th>Policy</th><th>For</th><th>Decision</th><th>Comment</th></tr></thead>\n<tbody>\n")
		for _, d := range v.Recent {
			m.raw("<tr>")
			m.elem("td", timestamp(d.At))
			m.raw("<td>")
			m.elem("code", d.GrantID)
			m.raw("</td>")
			m.elem("td", d.Policy)
			m.elem("td", d.User)
			m.elem("td", d.Verb+" by "+d.By)
			m.elem("td", d.Comment)
			m.raw("</tr>\n")
		}
		m.raw("</tbody>\n</table>\n")
	}
	m.raw("</section>\n</main>\n</body>\n</html>\n")
	return m.b.Bytes()
}

// writeRequest writes one pending request, with its decision form.
func writeRequest(m *markup, r *pendingView, csrf string) {
	m.open("article", "class", "request", "id", "request-"+r.ID)
	m.raw("\n<h3>")
	m.text(r.Policy + " for ")
	m.elem("span", r.User, "class", "requester")
	m.raw("</h3>\n<dl>\n<dt>Grant</dt><dd>")
	m.elem("code", r.ID)
	m.raw("</dd>\n<dt>Who</dt><dd>")
	m.text(r.User)
	if r.Agent != "" {
		m.text(" through agent " + r.Agent)
	}
	if r.Session != "" {
		m.text(" (session ")
		m.elem("code", r.Session)
		m.text(")")
	}
	m.raw("</dd>\n<dt>What</dt><dd>")
	m.text("target " + r.Target)
	if r.Namespace != "" {
		m.text(", namespace " + r.Namespace)
	} else {
		m.text(", cluster-wide")
	}
	m.raw("<ul>")
	for _, p := range r.Permissions {
		m.elem("li", p)
	}
	m.raw("</ul></dd>\n<dt>Why</dt>")
	m.elem("dd", r.Reason, "class", "reason")
	m.raw("\n<dt>Policy</dt>")
	m.elem("dd", r.Policy)
	m.raw("\n<dt>Duration</dt>")
	m.elem("dd", r.Duration.String())
	m.raw("\n<dt>Requested</dt>")
	m.elem("dd", timestamp(r.CreatedAt)+"; unanswered, it expires at "+timestamp(r.PendingUntil))
	if len(r.Approvals) > 0 {
		var by []string
		for _, a := range r.Approvals {
			s := a.By
			if a.Comment != "" {
				s += ": “" + a.Comment + "”"
			}
			by = append(by, s)
		}
		m.raw("\n<dt>Approved by</dt>")
		m.elem("dd", strings.Join(by, "; "))
	}
	if r.Waiting != "" {
		m.raw("\n<dt>Waiting for</dt>")
		m.elem("dd", r.Waiting)
	}
	m.raw("\n</dl>\n")
	m.open("form", "method", "post", "class", "decide")
	m.open("input", "type", "hidden", "name", "csrf", "value", csrf)
	m.raw("\n" + `<label>Comment <input type="text" name="comment" maxlength="1024" class="comment"></label>` + "\n")
	m.open("button", "type", "submit", "formaction", grantPath(r.ID, "approve"), "class", "approve")
	m.raw("Approve</button>\n")
	m.open("button", "type", "submit", "formaction", grantPath(r.ID, "deny"), "class", "deny")
	m.raw("Deny</button>\n</form>\n</article>\n")
}

// writeMessage writes a page holding only msg and a link to the page.
func writeMessage(msg string) []byte {
	m := &markup{}
	m.raw(pageHead)
	m.raw("<main>\n")
	m.elem("p", msg, "class", "message", "id", "message")
	m.raw("\n" + `<p><a href="/ui/">Back to the approval page</a></p>` + "\n</main>\n</body>\n</html>\n")
	return m.b.Bytes()
}
