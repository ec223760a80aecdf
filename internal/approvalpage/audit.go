package approvalpage

import (
	"context"
	"net/http"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// Auditor records the page's calls, as the admin API records its own.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// audited reports whether a request is recorded: every form posted
// (approve, deny, sign out) and every sign-in (the provider's redirect
// back). Page views and the sign-in's start change nothing and are not.
func audited(r *http.Request) bool {
	return r.Method == http.MethodPost || r.URL.Path == CallbackPath
}

// call is what a recorded request's handler tells the record: who made it,
// once known, and the message of a refusal.
type call struct {
	http.ResponseWriter
	status int
	by     *jit.Principal
	msg    string
}

func (c *call) WriteHeader(status int) {
	if c.status == 0 {
		c.status = status
	}
	c.ResponseWriter.WriteHeader(status)
}

func (c *call) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	return c.ResponseWriter.Write(b)
}

// setActor names who made the request w answers, if w is recorded.
func setActor(w http.ResponseWriter, by jit.Principal) {
	if c, ok := w.(*call); ok {
		c.by = &by
	}
}

// setRefusal keeps the message of a refusal w answers, if w is recorded.
func setRefusal(w http.ResponseWriter, status int, msg string) {
	if c, ok := w.(*call); ok && status >= 400 {
		c.msg = msg
	}
}

// record records c, the answer to r, as an admin.request event: the
// operation is the route's pattern, the path has no query (a sign-in's
// code and state are not recorded), and the error is the message the
// person read. A refused sign-in has no actor.
func (p *Page) record(r *http.Request, c *call) {
	e := audit.Event{
		Type:    audit.TypeAdminRequest,
		Admin:   &audit.AdminCall{Operation: r.Pattern, Path: r.URL.Path, SourceAddr: r.RemoteAddr},
		Outcome: &audit.Outcome{Status: c.status, Error: c.msg},
	}
	if by := c.by; by != nil {
		e.Actor = &audit.Actor{Name: by.Name, Groups: by.Groups, AuthMethod: by.AuthMethod, Identity: by.Identity}
	}
	if err := p.cfg.Audit.Record(context.WithoutCancel(r.Context()), e); err != nil {
		p.log.Error("record an approval page call", "operation", r.Pattern, "err", err)
	}
}
