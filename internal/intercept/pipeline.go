package intercept

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// RequestIDHeader carries the audit event's request ID back to the agent.
const RequestIDHeader = "X-Jitproxy-Request-Id"

// pipeline serves the requests inside intercepted tunnels.
type pipeline struct {
	cfg       *Config
	log       *slog.Logger
	errLog    *log.Logger // for httputil.ReverseProxy
	upstreams map[*Target]*upstream
	buffers   *bufferPool // ReverseProxy's, shared by every upstream
}

// exchange is the state of one request as it goes through the pipeline.
// It is not copied: its parts point to each other.
type exchange struct {
	req    *http.Request // as the agent sent it
	start  time.Time
	tunnel *tunnel
	up     *upstream // the tunnel's target's
	// policies are those in force when the request arrived: every
	// decision and hint of the request is made with them.
	policies PolicySet
	event    audit.Event
	status   int
	errMsg   string
	// What lives exactly as long as the request, kept here rather than
	// allocated one by one. Audit events never point into an exchange, so
	// that one kept by an audit sink does not keep the request body.
	w    countingWriter // counts the response body bytes
	body requestBody
	fwd  forwarding
	end  streamEnd
	// held says why grants in force were held back from this request by
	// their conditions, for the denial's hint.
	held []string
}

// countingWriter counts the response body bytes, and keeps the
// connection of an upgraded stream so that it can be closed when the
// stream's grant ends. Unwrap lets http.ResponseController reach the
// connection for flushes and deadlines.
type countingWriter struct {
	http.ResponseWriter
	n int64

	mu       sync.Mutex
	hijacked net.Conn
	closed   bool
}

// Hijack takes over the connection, as for an upgraded stream.
func (c *countingWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(c.ResponseWriter).Hijack()
	if err != nil {
		return conn, brw, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		conn.Close()
	}
	c.hijacked = conn
	return conn, brw, nil
}

// closeHijacked closes the hijacked connection, now or as soon as it is
// hijacked.
func (c *countingWriter) closeHijacked() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.hijacked != nil {
		c.hijacked.Close()
	}
}

func (c *countingWriter) Write(b []byte) (int, error) {
	n, err := c.ResponseWriter.Write(b)
	c.n += int64(n)
	return n, err
}

func (c *countingWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

func (p *pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := tunnelFrom(r.Context())
	if t == nil {
		http.Error(w, "jitproxy: not a tunnel", http.StatusInternalServerError)
		return
	}
	x := &exchange{
		req:      r,
		start:    p.cfg.Now(),
		tunnel:   t,
		up:       p.upstreams[t.target],
		policies: p.cfg.Policies.Policies(),
		event: audit.Event{
			Type:      audit.TypeRequest,
			RequestID: newRequestID(),
			Caller:    &t.caller,
		},
	}
	w.Header().Set(RequestIDHeader, x.event.RequestID)
	x.w.ResponseWriter = w
	// Recorded when the response is over: for watches, when the stream ends.
	// Deferred, so a panic that aborts the response still leaves a record.
	defer p.finish(r.Context(), x)
	p.serve(&x.w, r, x)
}

func (p *pipeline) finish(ctx context.Context, x *exchange) {
	x.event.Outcome = &audit.Outcome{Status: x.status, Error: x.errMsg, Bytes: x.w.n}
	x.event.DurationMS = durationMS(p.cfg.Now().Sub(x.start))
	x.up.metrics.Request(x.decision())
	if err := p.cfg.Audit.Record(context.WithoutCancel(ctx), x.event); err != nil {
		p.log.Error("record audit event", "type", x.event.Type, "request_id", x.event.RequestID, "err", err)
	}
}

// decision is the request's decision for metrics: error when jitproxy
// answered 5xx itself, deny when it refused the request or policy denied
// it, allow when policy allowed it.
func (x *exchange) decision() string {
	switch {
	case x.errMsg != "" && x.status >= 500:
		return decisionError
	case x.errMsg == "" && x.event.Decision != nil && x.event.Decision.Allowed:
		return decisionAllow
	}
	return decisionDeny
}

// fail answers with a safe message in the target's format and notes it for audit.
func (p *pipeline) fail(w http.ResponseWriter, x *exchange, status int, msg string) {
	x.status, x.errMsg = status, msg
	unwrapUnreadBody(x.req)
	x.tunnel.target.Protocol.WriteError(w, x.req, status, "jitproxy: "+msg)
}

// unwrapUnreadBody gives r back the body net/http made for it when the
// handler answers without having read any of it. net/http recognises its
// own body: for a client that sent "Expect: 100-continue" and waits for
// it before sending the body (the aws CLI's uploads), it then closes the
// connection after the answer instead of waiting, until the read deadline,
// for a body that never comes.
func unwrapUnreadBody(r *http.Request) {
	if db, ok := r.Body.(*deadlineBody); ok && !db.started.Load() {
		r.Body = db.ReadCloser
	}
}

func (p *pipeline) serve(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	t := x.tunnel
	proto := t.target.Protocol
	x.event.Action = &access.Action{Kind: proto.Kind(), Target: t.target.Name, Method: r.Method, Path: r.URL.Path}

	// A request inside a tunnel is for the host the tunnel was opened to.
	if !t.addressedBy(r.Host) {
		p.fail(w, x, http.StatusMisdirectedRequest, fmt.Sprintf("request for host %q inside a tunnel to %s", r.Host, t.hostport))
		return
	}
	// Watched from before the grants are read, so that a revocation or the
	// session's end cannot fall between the read and the watch.
	x.end.w = &x.w
	setGrant, stopWatch := p.cfg.Sessions.Watch(t.caller.Session, x.end.end)
	defer stopWatch()
	// The session may have ended since the tunnel opened.
	active, err := p.cfg.Sessions.ActiveGrants(ctx, t.caller.Session)
	if errors.Is(err, jit.ErrUnauthenticated) {
		p.fail(w, x, http.StatusUnauthorized, "your jitproxy session has ended")
		return
	}
	if errors.Is(err, jit.ErrLocked) {
		// The lock's message names what is locked and why, as an admin wrote it.
		p.fail(w, x, http.StatusForbidden, err.Error())
		return
	}
	if err != nil {
		p.log.Error("load grants", "request_id", x.event.RequestID, "err", err)
		p.fail(w, x, http.StatusServiceUnavailable, "cannot load your grants right now; the request was not forwarded; try again")
		return
	}
	// A grant whose conditions (window, source network, auth method) do
	// not hold for this use is not in force for this request.
	active, x.held = t.usable(active, p.cfg.Now())
	grants := active.Grants
	caller := active.Session.Caller()
	caller.AuthMethod, caller.SourceAddr = t.caller.AuthMethod, t.caller.SourceAddr
	x.event.Caller = &caller

	rb := &x.body
	*rb = requestBody{p: p, w: w, r: r}
	classifyStart := p.cfg.Now()
	action, err := proto.Classify(r, rb.read)
	if err != nil {
		if be := (*bodyError)(nil); errors.As(err, &be) {
			p.fail(w, x, be.status, be.msg)
			return
		}
		p.fail(w, x, http.StatusBadRequest, "request refused: "+err.Error())
		return
	}
	action.Kind, action.Target = proto.Kind(), t.target.Name
	x.event.Action = &action
	if sr, ok := proto.(SelfReviewer); ok && sr.IsSelfReview(action) {
		p.selfReview(w, r, x, sr, caller, active)
		return
	}

	var body any
	var raw []byte
	if proto.NeedsBody(action) {
		if raw, err = rb.read(); err != nil {
			be := (*bodyError)(nil)
			errors.As(err, &be)
			p.fail(w, x, be.status, be.msg)
			return
		}
		if body, err = proto.DecodeBody(action, r.Header.Get("Content-Type"), raw); err != nil {
			p.fail(w, x, http.StatusUnsupportedMediaType, "cannot inspect the request body: "+err.Error())
			return
		}
	} else if !rb.done {
		p.limitBodyTime(w, r)
	}
	x.up.metrics.Stage(stageClassify, p.cfg.Now().Sub(classifyStart))
	in := authz.Input{Caller: caller, Action: action, Body: body, Grants: t.policyGrants(active)}
	d, ok := p.decide(ctx, w, x, in)
	if !ok {
		return
	}
	if !d.Allowed {
		p.deny(w, r, x, in, d)
		return
	}
	var req broker.Request
	var learning *jit.Grant
	if g := chooseGrant(grants, d.GrantIDs); g != nil {
		x.event.Grant = &audit.Grant{ID: g.ID, Policy: g.Policy, Version: g.PolicyVersion, Namespace: g.Namespace, ExpiresAt: g.ExpiresAt, Learning: g.Learning}
		if g.Learning {
			learning = g
		}
		for _, a := range g.Approvals {
			x.event.Grant.Approvers = append(x.event.Grant.Approvers, a.By)
		}
		req = broker.Request{
			GrantID: g.ID, GrantExpiresAt: g.ExpiresAt, Target: t.target.Name, Namespace: g.Namespace,
			Provider: g.Credential.Provider, Options: g.Credential.Options,
			Permissions: g.Permissions, Caller: caller,
		}
		setGrant(g.ID)
	} else {
		// Allowed by permit_discovery alone.
		src := t.target.Discovery
		if src == nil {
			p.fail(w, x, http.StatusForbidden, "this target has no discovery identity; request a grant first")
			return
		}
		req = broker.Request{
			GrantID: discoveryGrantID, GrantExpiresAt: p.cfg.Now().Add(discoveryCredentialTTL), Target: t.target.Name,
			Provider: src.Provider, Options: src.Options,
		}
	}
	// No audit, no credential: the decision is recorded before anything
	// is minted or forwarded.
	decided := x.event
	decided.Type = audit.TypeRequestDecided
	if err := p.cfg.Audit.Record(context.WithoutCancel(ctx), decided); err != nil {
		p.log.Error("record the decision; the request is refused", "request_id", x.event.RequestID, "err", err)
		p.fail(w, x, http.StatusServiceUnavailable, "the audit log cannot record this request right now; it was not forwarded")
		return
	}
	credStart := p.cfg.Now()
	cred, err := p.cfg.Credentials.Credential(ctx, req)
	x.up.metrics.Stage(stageCredential, p.cfg.Now().Sub(credStart))
	if err != nil {
		p.log.Error("obtain credential", "request_id", x.event.RequestID, "grant", req.GrantID, "err", err)
		p.fail(w, x, http.StatusBadGateway, fmt.Sprintf("could not obtain a credential for grant %s; the request was not forwarded", req.GrantID))
		return
	}
	x.event.Credential = &audit.Credential{Provider: req.Provider, Target: req.Target, Subject: cred.Subject, ExpiresAt: cred.ExpiresAt}
	up := x.up
	f := &x.fwd
	*f = forwarding{x: x, action: action, cred: cred, host: t.hostport, grantID: req.GrantID}
	if adm, ok := proto.(Admitter); ok && adm.NeedsObject(action) {
		if !p.admit(w, r, x, adm, in, raw, req, up, f) {
			return
		}
	}
	if learning != nil && p.cfg.Profiles != nil {
		// In process only: the profile is written to Redis in batches.
		p.cfg.Profiles.Record(learning.ID, learning.ExpiresAt, &action)
	}
	f.start = p.cfg.Now()
	up.forward(w, r, f, req.GrantExpiresAt)
}

// decide evaluates the policies; a failure is answered here and fails closed.
func (p *pipeline) decide(ctx context.Context, w http.ResponseWriter, x *exchange, in authz.Input) (authz.Decision, bool) {
	start := p.cfg.Now()
	d, err := x.decide(ctx, in)
	x.up.metrics.Stage(stageDecide, p.cfg.Now().Sub(start))
	if err != nil {
		p.log.Error("evaluate policies", "request_id", x.event.RequestID, "err", err)
		p.fail(w, x, http.StatusInternalServerError, "policy evaluation failed; the request was not forwarded")
		return authz.Decision{}, false
	}
	x.event.Decision = &audit.Decision{Allowed: d.Allowed, Reasons: d.Reasons}
	if x.policies.Shadow != nil {
		p.shadow(ctx, x, in, d)
	}
	return d, true
}

// errNoPolicies is the evaluation error of a request that arrived while no
// policies were in force.
var errNoPolicies = errors.New("no authorization policies are loaded")

// decide evaluates the policies the request arrived under for in.
func (x *exchange) decide(ctx context.Context, in authz.Input) (authz.Decision, error) {
	return x.policies.decide(ctx, in)
}

// decide evaluates the authorization policies of s for in.
func (s PolicySet) decide(ctx context.Context, in authz.Input) (authz.Decision, error) {
	if s.Decider == nil {
		return authz.Decision{}, errNoPolicies
	}
	return s.Decider.Decide(ctx, in)
}

// suggestPolicies finds the access policies of ps under which the caller
// of in could request a grant that allows in's action, by deciding in with
// each candidate's grant; none when ps has no access policies. Pending
// requests are not looked up.
func suggestPolicies(ctx context.Context, ps PolicySet, in authz.Input) (jit.Suggestion, error) {
	if ps.Access == nil {
		return jit.Suggestion{}, nil
	}
	return ps.Access.Suggest(ctx, in.Caller, in.Action, func(ctx context.Context, cs []jit.Candidate) ([]string, error) {
		hypo := in
		gs := make([]authz.Grant, len(cs))
		for i, c := range cs {
			gs[i] = authz.Grant{ID: c.Policy.Name, Policy: c.Policy.Name, Target: c.Policy.Target, Namespace: c.Namespace, Permissions: c.Policy.Permissions}
		}
		hypo.Grants = authz.NewGrantSet(gs...)
		d, err := ps.decide(ctx, hypo)
		if err != nil || !d.Allowed {
			return nil, err
		}
		return d.GrantIDs, nil
	})
}

// admit has the target compute the object the write r would store, with
// the grant's credential, and decides again with that object. It reports
// whether r may go on to be forwarded; otherwise the agent was answered.
func (p *pipeline) admit(w http.ResponseWriter, r *http.Request, x *exchange, adm Admitter, in authz.Input, raw []byte, req broker.Request, up *upstream, f *forwarding) bool {
	t := x.tunnel.target
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.UpstreamTimeout)
	defer cancel()
	send := func(req *http.Request) (*http.Response, error) { return up.send(ctx, f, req) }
	// A Decider is there: the request was decided once already.
	write, answer, err := adm.Admit(ctx, send, r, raw, in.Action, x.policies.Decider.UsesOldObject())
	if err != nil {
		p.log.Warn("judge the stored object", "request_id", x.event.RequestID, "target", t.Name, "err", err)
		p.fail(w, x, http.StatusBadGateway, "cannot judge the object this request would store ("+err.Error()+"); it was not forwarded")
		return false
	}
	if answer != nil {
		defer answer.Body.Close()
	}
	if write.Object == nil {
		if answer == nil {
			p.fail(w, x, http.StatusBadGateway, "the target computed no object for this request; it was not forwarded")
			return false
		}
		// The dry run failed: the write would fail the same way.
		p.relay(w, x, answer)
		return false
	}
	in.Object, in.OldObject = write.Object, write.OldObject
	d, ok := p.decide(r.Context(), w, x, in)
	if !ok {
		return false
	}
	if !d.Allowed {
		p.deny(w, r, x, in, d)
		return false
	}
	if !slices.Contains(d.GrantIDs, req.GrantID) {
		// The credential that computed the object belongs to a grant that
		// does not allow the object.
		x.event.Decision = &audit.Decision{Reasons: []string{"the grant that allowed the request does not allow the object it would store"}}
		p.fail(w, x, http.StatusForbidden, fmt.Sprintf("grant %s does not allow the object this request would store", req.GrantID))
		return false
	}
	if answer != nil {
		// The request was itself a dry run: its answer is all it asked for.
		p.relay(w, x, answer)
		return false
	}
	return true
}

// relay gives the agent the upstream's own answer.
func (p *pipeline) relay(w http.ResponseWriter, x *exchange, resp *http.Response) {
	for k, vs := range resp.Header {
		switch k {
		case "Connection", "Content-Length", "Transfer-Encoding", "Keep-Alive", "Upgrade", "Trailer":
			continue
		}
		w.Header()[k] = vs
	}
	x.status = resp.StatusCode
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, resp.Body)
}

// requestBody reads a request's body once, within the size and time
// limits, and puts it back for forwarding.
type requestBody struct {
	p    *pipeline
	w    http.ResponseWriter
	r    *http.Request
	done bool
	raw  []byte
	err  error
}

// bodyError is a body that could not be read, with the answer to give.
type bodyError struct {
	status int
	msg    string
}

func (e *bodyError) Error() string { return e.msg }

// read returns the body; every error is a *bodyError.
func (b *requestBody) read() ([]byte, error) {
	if !b.done {
		b.done = true
		b.raw, b.err = b.load()
	}
	return b.raw, b.err
}

func (b *requestBody) load() ([]byte, error) {
	p, r := b.p, b.r
	if r.Body == nil || r.Body == http.NoBody {
		return nil, nil
	}
	rc := http.NewResponseController(b.w)
	rc.SetReadDeadline(p.cfg.Now().Add(p.cfg.BodyTimeout))
	raw, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxBodyBytes+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		return nil, &bodyError{http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s", p.cfg.BodyTimeout)}
	}
	if err != nil {
		return nil, &bodyError{http.StatusBadRequest, "cannot read the request body"}
	}
	// Cleared only after a whole body: after a failed read the deadline
	// stays, so that net/http's discarding of the rest of the body before
	// the answer cannot wait for a client that sends nothing.
	rc.SetReadDeadline(time.Time{})
	if int64(len(raw)) > p.cfg.MaxBodyBytes {
		return nil, &bodyError{http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes cannot be inspected", p.cfg.MaxBodyBytes)}
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	return raw, nil
}

// limitBodyTime bounds the time a body forwarded as it streams may take to
// arrive, so that a slow client cannot hold a connection and an upstream
// request open. Upgraded streams (exec, port-forward) are not bounded.
func (p *pipeline) limitBodyTime(w http.ResponseWriter, r *http.Request) {
	if r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0 || r.Header.Get("Upgrade") != "" {
		return
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(p.cfg.Now().Add(p.cfg.BodyTimeout))
	r.Body = &deadlineBody{ReadCloser: r.Body, clear: func() { rc.SetReadDeadline(time.Time{}) }}
}

// deadlineBody clears the connection's read deadline once the whole body
// is read, so that it cannot cut short a long response (net/http cancels a
// request whose connection fails to read). After a failed read it stays.
type deadlineBody struct {
	io.ReadCloser
	clear   func()
	once    sync.Once
	started atomic.Bool // Read was called
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	b.started.Store(true)
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.clear)
	}
	return n, err
}

// usable returns a without the grants whose conditions do not hold for a
// use through t at now, and why each of those is held back; a itself when
// all hold (a grant without conditions always does). The tunnel keeps the
// last result, so that the same grants held back give the same *Active
// (and policyGrants converts them once).
func (t *tunnel) usable(a *jit.Active, now time.Time) (*jit.Active, []string) {
	held := a.Held // appended to only once cloned below
	var ok []bool
	for i, g := range a.Grants {
		why := g.Conditions.Check(now, t.caller.SourceAddr, t.caller.AuthMethod)
		if why == "" {
			continue
		}
		if ok == nil {
			ok = make([]bool, len(a.Grants))
			for j := range ok {
				ok[j] = true
			}
		}
		ok[i] = false
		held = append(slices.Clip(held), fmt.Sprintf("grant %s (%s) is %s", g.ID, g.Policy, why))
	}
	if ok == nil {
		return a, held
	}
	if v := t.held.Load(); v != nil && v.from == a && slices.Equal(v.ok, ok) {
		return v.to, held
	}
	out := &jit.Active{Session: a.Session, Held: a.Held}
	for i, g := range a.Grants {
		if ok[i] {
			out.Grants = append(out.Grants, g)
		}
	}
	t.held.Store(&heldGrants{from: a, ok: ok, to: out})
	return out, held
}

// heldGrants is a tunnel's last result of usable: from without the
// grants not ok.
type heldGrants struct {
	from *jit.Active
	ok   []bool
	to   *jit.Active
}

// policyGrants returns the grants in force as policies see them,
// converted once per set of grants and tunnel: the tunnel keeps the last
// conversion until ActiveGrants returns another set.
func (t *tunnel) policyGrants(a *jit.Active) *authz.GrantSet {
	if v := t.grants.Load(); v != nil && v.active == a {
		return v.set
	}
	v := &policyGrants{active: a, set: PolicyGrants(a.Grants)}
	t.grants.Store(v)
	return v.set
}

// chooseGrant picks, among the permitting grants, the one that lasts longest.
func chooseGrant(gs []*jit.Grant, ids []string) *jit.Grant {
	var best *jit.Grant
	for _, g := range gs {
		for _, id := range ids {
			if g.ID == id && (best == nil || g.ExpiresAt.After(best.ExpiresAt)) {
				best = g
			}
		}
	}
	return best
}

// PolicyGrants converts grants in force to what policies see of them
// (input.grants).
func PolicyGrants(grants []*jit.Grant) *authz.GrantSet {
	gs := make([]authz.Grant, len(grants))
	for i, g := range grants {
		gs[i] = authz.Grant{ID: g.ID, Policy: g.Policy, Target: g.Target, Namespace: g.Namespace, Permissions: g.Permissions}
	}
	return authz.NewGrantSet(gs...)
}

// deny answers a denied request with what the agent can do about it.
func (p *pipeline) deny(w http.ResponseWriter, r *http.Request, x *exchange, in authz.Input, d authz.Decision) {
	unwrapUnreadBody(r)
	var s *jit.Suggestion
	if noGrant(d) {
		sug := p.suggest(r.Context(), x, in)
		x.event.Decision.Policies = sug.Policies
		s = &sug
	}
	msg := denialMessage(x.tunnel.target.Protocol.Describe(in.Action), d, x.held, s)
	x.status = http.StatusForbidden
	x.tunnel.target.Protocol.WriteError(w, x.req, http.StatusForbidden, msg)
}

// denialMessage is what a denied agent is told: the action (desc), why,
// the grants held back by their conditions (held) and, for a denial for
// want of a grant, the hint of s (nil: none).
func denialMessage(desc string, d authz.Decision, held []string, s *jit.Suggestion) string {
	msg := fmt.Sprintf("jitproxy denied %s: %s.", desc, strings.Join(d.Reasons, "; "))
	if noGrant(d) && len(held) > 0 {
		msg += " Not in force: " + strings.Join(held, "; ") + "."
	}
	if s != nil {
		msg += " " + s.Hint()
	}
	return msg
}

// noGrant reports whether d denies only for want of a grant, not because a
// policy forbids the request.
func noGrant(d authz.Decision) bool {
	return !d.Allowed && len(d.Reasons) == 1 && d.Reasons[0] == authz.ReasonNoGrant
}

// suggest finds the access policies under which the caller of in could
// request a grant that allows in's action. A failure to evaluate them is
// logged and suggests none.
func (p *pipeline) suggest(ctx context.Context, x *exchange, in authz.Input) jit.Suggestion {
	s, err := suggestPolicies(ctx, x.policies, in)
	if err != nil {
		p.log.Error("evaluate policies for a hint", "request_id", x.event.RequestID, "err", err)
	}
	if len(s.Policies) > 0 {
		s.Pending = p.cfg.Sessions.Pending(ctx, in.Caller, in.Action, s.Policies)
	}
	return s
}

// selfReview answers a request that asks what its caller may do
// (SelfReviewer) from the caller's grants and the policies, and forwards
// nothing: no grant is needed to ask, and no credential is minted. The
// audit record's reasons say what was asked and answered.
func (p *pipeline) selfReview(w http.ResponseWriter, r *http.Request, x *exchange, sr SelfReviewer, caller access.Caller, active *jit.Active) {
	raw, err := x.body.read()
	if err != nil {
		be := (*bodyError)(nil)
		errors.As(err, &be)
		p.fail(w, x, be.status, be.msg)
		return
	}
	ctx, t := r.Context(), x.tunnel.target
	grants := x.tunnel.policyGrants(active)
	reasons := []string{"answered by jitproxy"}
	var evalErr error
	can := func(a access.Action) (access.Answer, error) {
		a.Kind, a.Target = t.Protocol.Kind(), t.Name
		ans, err := p.answer(ctx, x, authz.Input{Caller: caller, Action: a, Grants: grants})
		if err != nil {
			evalErr = err
			return ans, err
		}
		verdict := "no"
		if ans.Allowed {
			verdict = "yes"
		}
		reasons = append(reasons, fmt.Sprintf("may %s: %s", t.Protocol.Describe(a), verdict))
		return ans, nil
	}
	rules := func(namespace string) []access.KubernetesPermission {
		reasons = append(reasons, fmt.Sprintf("the permissions of the grants in force in namespace %q", namespace))
		var perms []access.KubernetesPermission
		for _, g := range active.Grants {
			if g.Target != t.Name || g.Namespace != "" && g.Namespace != namespace {
				continue
			}
			for _, perm := range g.Permissions {
				if perm.Kubernetes != nil {
					perms = append(perms, *perm.Kubernetes)
				}
			}
		}
		return perms
	}
	x.status = http.StatusCreated
	err = sr.SelfReview(w, *x.event.Action, r.Header.Get("Content-Type"), raw, can, rules)
	switch {
	case evalErr != nil:
		p.log.Error("evaluate policies for a self review", "request_id", x.event.RequestID, "err", evalErr)
		p.fail(w, x, http.StatusInternalServerError, "policy evaluation failed; the question was not answered")
	case err != nil:
		p.fail(w, x, http.StatusBadRequest, "cannot answer this review: "+err.Error())
	default:
		x.event.Decision = &audit.Decision{Allowed: true, Reasons: reasons}
	}
}

// answer decides in for a caller who asks whether it may, rather than
// does: the answer a request would get now, with its reason or hint.
func (p *pipeline) answer(ctx context.Context, x *exchange, in authz.Input) (access.Answer, error) {
	d, err := x.decide(ctx, in)
	if err != nil {
		return access.Answer{}, err
	}
	t := x.tunnel.target
	desc := t.Protocol.Describe(in.Action)
	switch {
	case d.Allowed && len(d.GrantIDs) == 0 && t.Discovery == nil:
		return access.Answer{Reason: fmt.Sprintf("jitproxy would deny %s: this target has no discovery identity; request a grant first", desc)}, nil
	case d.Allowed:
		return access.Answer{Allowed: true, Reason: "jitproxy: " + strings.Join(d.Reasons, "; ")}, nil
	case noGrant(d):
		s := p.suggest(ctx, x, in)
		return access.Answer{Reason: fmt.Sprintf("jitproxy would deny %s: %s. %s", desc, authz.ReasonNoGrant, s.Hint())}, nil
	}
	return access.Answer{Forbidden: true, Reason: fmt.Sprintf("jitproxy would deny %s: %s", desc, strings.Join(d.Reasons, "; "))}, nil
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
