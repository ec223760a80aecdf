package approvalpage

import (
	"cmp"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// recentDecisions caps the decisions the page lists.
const recentDecisions = 20

// view is what the page template shows.
type view struct {
	Name    string
	Groups  []string
	CSRF    string
	Error   string
	Pending []pendingView
	Recent  []decisionView
}

type pendingView struct {
	ID, User, Agent, Session, Policy, Target, Namespace string
	Permissions                                         []string
	Reason                                              string
	Duration                                            time.Duration
	CreatedAt, PendingUntil                             time.Time
	Approvals                                           []jit.Decision
	Waiting                                             string
}

type decisionView struct {
	GrantID, Policy, User, Verb, By, Comment string
	At                                       time.Time
}

// render answers the page for s with status and, if set, an error message.
func (p *Page) render(w http.ResponseWriter, r *http.Request, s *session, status int, errMsg string) {
	setRefusal(w, status, errMsg)
	by := s.principal()
	gs, err := p.cfg.Grants.List(r.Context(), by, jit.ListFilter{})
	if err != nil {
		p.fail(w, r, err)
		return
	}
	v := view{Name: s.Name, Groups: s.Groups, CSRF: s.CSRF, Error: errMsg}
	for _, g := range gs {
		if g.State == jit.StatePending && mayApprove(by, g) {
			v.Pending = append(v.Pending, pendingView{
				ID: g.ID, User: g.User, Agent: g.RequestedBy.Agent, Session: g.Session, Policy: g.Policy,
				Target: g.Target, Namespace: g.Namespace, Permissions: permissions(g.Permissions),
				Reason: g.Reason, Duration: g.Duration, CreatedAt: g.CreatedAt, PendingUntil: g.PendingUntil,
				Approvals: g.Approvals, Waiting: g.Waiting(),
			})
		}
		for _, d := range g.Approvals {
			v.Recent = append(v.Recent, decisionView{GrantID: g.ID, Policy: g.Policy, User: g.User, Verb: "approved", By: d.By, Comment: d.Comment, At: d.At})
		}
		if d := g.Denial; d != nil {
			v.Recent = append(v.Recent, decisionView{GrantID: g.ID, Policy: g.Policy, User: g.User, Verb: "denied", By: d.By, Comment: d.Comment, At: d.At})
		}
	}
	slices.SortStableFunc(v.Recent, func(a, b decisionView) int { return b.At.Compare(a.At) })
	v.Recent = v.Recent[:min(len(v.Recent), recentDecisions)]
	slices.SortStableFunc(v.Pending, func(a, b pendingView) int { return cmp.Compare(a.CreatedAt.UnixNano(), b.CreatedAt.UnixNano()) })
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(writePage(&v))
}

// mayApprove reports whether by may approve g as far as the page can
// tell, to list it: an approver who is not its user or requester and has
// not approved it yet. Approve itself decides.
func mayApprove(by jit.Principal, g *jit.Grant) bool {
	if by.Name == g.User || by.Name == g.RequestedBy.Name || !g.Approvers.Matches(by.Name, by.Groups) {
		return false
	}
	return !slices.ContainsFunc(g.Approvals, func(d jit.Decision) bool { return d.By == by.Name })
}

// permissions describes each permission in a line.
func permissions(ps []access.Permission) []string {
	var out []string
	for _, p := range ps {
		switch {
		case p.Kubernetes != nil:
			k := p.Kubernetes
			what := append(append([]string{}, k.Resources...), k.NonResourceURLs...)
			s := strings.Join(k.Verbs, ", ") + " " + strings.Join(what, ", ")
			if len(k.ResourceNames) > 0 {
				s += " named " + strings.Join(k.ResourceNames, ", ")
			}
			out = append(out, s)
		case p.AWS != nil:
			out = append(out, fmt.Sprintf("%s on %s", strings.Join(p.AWS.Actions, ", "), strings.Join(p.AWS.Resources, ", ")))
		}
	}
	return out
}
