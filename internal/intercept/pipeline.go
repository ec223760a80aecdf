package intercept

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
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
	cfg    *Config
	log    *slog.Logger
	errLog *log.Logger // for httputil.ReverseProxy
}

// exchange is the state of one request as it goes through the pipeline.
type exchange struct {
	start  time.Time
	tunnel *tunnel
	event  audit.Event
	status int
	errMsg string
}

func (p *pipeline) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	t := tunnelFrom(r.Context())
	if t == nil {
		http.Error(w, "jitproxy: not a tunnel", http.StatusInternalServerError)
		return
	}
	x := &exchange{
		start:  p.cfg.Now(),
		tunnel: t,
		event: audit.Event{
			Type:      audit.TypeRequest,
			RequestID: newRequestID(),
			Caller:    &t.caller,
		},
	}
	w.Header().Set(RequestIDHeader, x.event.RequestID)
	// Recorded when the response is over: for watches, when the stream ends.
	// Deferred, so a panic that aborts the response still leaves a record.
	defer p.finish(r.Context(), x)
	p.serve(w, r, x)
}

func (p *pipeline) finish(ctx context.Context, x *exchange) {
	x.event.Outcome = &audit.Outcome{Status: x.status, Error: x.errMsg}
	x.event.DurationMS = durationMS(p.cfg.Now().Sub(x.start))
	if err := p.cfg.Audit.Record(context.WithoutCancel(ctx), x.event); err != nil {
		p.log.Error("record audit event", "type", x.event.Type, "request_id", x.event.RequestID, "err", err)
	}
}

// fail answers with a safe message in the target's format and notes it for audit.
func (p *pipeline) fail(w http.ResponseWriter, x *exchange, status int, msg string) {
	x.status, x.errMsg = status, msg
	x.tunnel.target.Protocol.WriteError(w, status, "jitproxy: "+msg)
}

func (p *pipeline) serve(w http.ResponseWriter, r *http.Request, x *exchange) {
	ctx := r.Context()
	t := x.tunnel
	proto := t.target.Protocol
	x.event.Action = &access.Action{Kind: proto.Kind(), Target: t.target.Name, Method: r.Method, Path: r.URL.Path}

	// A request inside a tunnel is for the host the tunnel was opened to.
	if hp, err := normalizeHostPort(r.Host); err != nil || hp != t.hostport {
		p.fail(w, x, http.StatusMisdirectedRequest, fmt.Sprintf("request for host %q inside a tunnel to %s", r.Host, t.hostport))
		return
	}
	// Watched from before the grants are read, so that a revocation or the
	// session's end cannot fall between the read and the watch.
	ended, setGrant, stopWatch := p.cfg.Sessions.Watch(t.caller.Session)
	defer stopWatch()
	// The session may have ended since the tunnel opened.
	session, grants, err := p.cfg.Sessions.ActiveGrants(ctx, t.caller.Session)
	if errors.Is(err, jit.ErrUnauthenticated) {
		p.fail(w, x, http.StatusUnauthorized, "your jitproxy session has ended")
		return
	}
	if err != nil {
		p.log.Error("load grants", "request_id", x.event.RequestID, "err", err)
		p.fail(w, x, http.StatusServiceUnavailable, "cannot load your grants right now; the request was not forwarded; try again")
		return
	}
	caller := session.Caller()
	caller.AuthMethod, caller.SourceAddr = t.caller.AuthMethod, t.caller.SourceAddr
	x.event.Caller = &caller

	action, err := proto.Classify(r)
	if err != nil {
		p.fail(w, x, http.StatusBadRequest, "request refused: "+err.Error())
		return
	}
	action.Kind, action.Target = proto.Kind(), t.target.Name
	x.event.Action = &action

	var body any
	var raw []byte
	if proto.NeedsBody(action) {
		var ok bool
		if body, raw, ok = p.readBody(w, r, x, action); !ok {
			return
		}
	} else {
		p.limitBodyTime(w, r)
	}
	in := authz.Input{Caller: caller, Action: action, Body: body, Grants: policyGrants(grants)}
	d, ok := p.decide(ctx, w, x, in)
	if !ok {
		return
	}
	if !d.Allowed {
		p.deny(w, r, x, in, d)
		return
	}
	var req broker.Request
	if g := chooseGrant(grants, d.GrantIDs); g != nil {
		x.event.Grant = &audit.Grant{ID: g.ID, Policy: g.Policy, Version: g.PolicyVersion, Namespace: g.Namespace, ExpiresAt: g.ExpiresAt}
		req = broker.Request{
			GrantID: g.ID, GrantExpiresAt: g.ExpiresAt, Target: t.target.Name, Namespace: g.Namespace,
			Provider: g.Credential.Provider, Options: g.Credential.Options,
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
	cred, err := p.cfg.Credentials.Credential(ctx, req)
	if err != nil {
		p.log.Error("obtain credential", "request_id", x.event.RequestID, "grant", req.GrantID, "err", err)
		p.fail(w, x, http.StatusBadGateway, fmt.Sprintf("could not obtain a credential for grant %s; the request was not forwarded", req.GrantID))
		return
	}
	if adm, ok := proto.(Admitter); ok && adm.NeedsObject(action) {
		if !p.admit(w, r, x, adm, in, raw, req, cred) {
			return
		}
	}
	p.forward(w, r, x, req.GrantExpiresAt, req.GrantID, cred, ended)
}

// decide evaluates the policies; a failure is answered here and fails closed.
func (p *pipeline) decide(ctx context.Context, w http.ResponseWriter, x *exchange, in authz.Input) (authz.Decision, bool) {
	d, err := p.cfg.Decider.Decide(ctx, in)
	if err != nil {
		p.log.Error("evaluate policies", "request_id", x.event.RequestID, "err", err)
		p.fail(w, x, http.StatusInternalServerError, "policy evaluation failed; the request was not forwarded")
		return authz.Decision{}, false
	}
	x.event.Decision = &audit.Decision{Allowed: d.Allowed, Reasons: d.Reasons}
	return d, true
}

// admit has the target compute the object the write r would store, with
// the grant's credential, and decides again with that object. It reports
// whether r may go on to be forwarded; otherwise the agent was answered.
func (p *pipeline) admit(w http.ResponseWriter, r *http.Request, x *exchange, adm Admitter, in authz.Input, raw []byte, req broker.Request, cred broker.Credential) bool {
	t := x.tunnel.target
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.UpstreamTimeout)
	defer cancel()
	write, answer, err := adm.Admit(ctx, p.sender(ctx, t, cred), r, raw, in.Action, p.cfg.Decider.UsesOldObject())
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

// sender returns the function through which a protocol sends its own
// requests to t's upstream with cred: the same URL rewriting, header
// allow-list and credential as forwarded requests.
func (p *pipeline) sender(ctx context.Context, t *Target, cred broker.Credential) func(*http.Request) (*http.Response, error) {
	return func(req *http.Request) (*http.Response, error) {
		out := req.WithContext(ctx)
		out.URL = &url.URL{Path: req.URL.Path, RawQuery: req.URL.RawQuery}
		if _, ok := out.Header["User-Agent"]; !ok {
			out.Header = out.Header.Clone()
			out.Header.Set("User-Agent", "jitproxy")
		}
		outbound(out, t, cred)
		return t.Transport.RoundTrip(out)
	}
}

// outbound makes out a request to t's upstream that carries only the
// headers t's protocol allows, and cred.
func outbound(out *http.Request, t *Target, cred broker.Credential) {
	(&httputil.ProxyRequest{Out: out}).SetURL(t.Upstream)
	out.Header = t.Protocol.OutboundHeader(out.Header)
	t.Protocol.Authorize(out, cred)
}

// readBody reads the body policies need, within the size and time limits,
// and puts it back for forwarding.
func (p *pipeline) readBody(w http.ResponseWriter, r *http.Request, x *exchange, a access.Action) (any, []byte, bool) {
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(p.cfg.Now().Add(p.cfg.BodyTimeout))
	raw, err := io.ReadAll(io.LimitReader(r.Body, p.cfg.MaxBodyBytes+1))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		p.fail(w, x, http.StatusRequestTimeout, fmt.Sprintf("the request body did not arrive within %s", p.cfg.BodyTimeout))
		return nil, nil, false
	}
	if err != nil {
		p.fail(w, x, http.StatusBadRequest, "cannot read the request body")
		return nil, nil, false
	}
	// Cleared only after a whole body: after a failed read the deadline
	// stays, so that net/http's discarding of the rest of the body before
	// the answer cannot wait for a client that sends nothing.
	rc.SetReadDeadline(time.Time{})
	if int64(len(raw)) > p.cfg.MaxBodyBytes {
		p.fail(w, x, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes cannot be inspected", p.cfg.MaxBodyBytes))
		return nil, nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	body, err := x.tunnel.target.Protocol.DecodeBody(a, r.Header.Get("Content-Type"), raw)
	if err != nil {
		p.fail(w, x, http.StatusUnsupportedMediaType, "cannot inspect the request body: "+err.Error())
		return nil, nil, false
	}
	return body, raw, true
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
	clear func()
	once  sync.Once
}

func (b *deadlineBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if errors.Is(err, io.EOF) {
		b.once.Do(b.clear)
	}
	return n, err
}

// errGrantEnded ends a response that was streaming when its grant or
// session ended.
var errGrantEnded = errors.New("the grant or session ended")

// forward sends the request upstream with only the headers its protocol
// allows and the minted credential, ending it when the grant expires or
// when the grant or session ends (ended is closed).
func (p *pipeline) forward(w http.ResponseWriter, r *http.Request, x *exchange, until time.Time, grantID string, cred broker.Credential, ended <-chan struct{}) {
	t := x.tunnel.target
	ctx, cancelDeadline := context.WithDeadline(r.Context(), until)
	defer cancelDeadline()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		select {
		case <-ended:
			cancel(errGrantEnded)
		case <-ctx.Done():
		}
	}()
	why := func() string {
		switch {
		case errors.Is(context.Cause(ctx), errGrantEnded):
			return fmt.Sprintf("grant %s or your session has ended", grantID)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Sprintf("grant %s has expired", grantID)
		}
		return ""
	}
	rp := &httputil.ReverseProxy{
		Rewrite:   func(pr *httputil.ProxyRequest) { outbound(pr.Out, t, cred) },
		Transport: t.Transport,
		ModifyResponse: func(resp *http.Response) error {
			x.status = resp.StatusCode
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if msg := why(); msg != "" {
				p.fail(w, x, http.StatusForbidden, msg)
				return
			}
			p.log.Warn("upstream request failed", "request_id", x.event.RequestID, "target", t.Name, "err", err)
			p.fail(w, x, http.StatusBadGateway, "the target could not be reached")
		},
		ErrorLog: p.errLog,
	}
	defer func() {
		if msg := why(); msg != "" && x.errMsg == "" {
			x.errMsg = msg + " while the response was streaming"
		}
	}()
	rp.ServeHTTP(w, r.WithContext(ctx))
}

// policyGrants converts grants to what policies see.
func policyGrants(gs []*jit.Grant) []authz.Grant {
	out := make([]authz.Grant, len(gs))
	for i, g := range gs {
		out[i] = authz.Grant{ID: g.ID, Policy: g.Policy, Target: g.Target, Namespace: g.Namespace, Permissions: g.Permissions}
	}
	return out
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

// deny answers a denied request with what the agent can do about it.
func (p *pipeline) deny(w http.ResponseWriter, r *http.Request, x *exchange, in authz.Input, d authz.Decision) {
	desc := x.tunnel.target.Protocol.Describe(in.Action)
	msg := fmt.Sprintf("jitproxy denied %s: %s.", desc, strings.Join(d.Reasons, "; "))
	if len(d.Reasons) == 1 && d.Reasons[0] == authz.ReasonNoGrant {
		policies, hint := p.hint(r.Context(), in)
		x.event.Decision.Policies = policies
		msg += " " + hint
	}
	x.status = http.StatusForbidden
	x.tunnel.target.Protocol.WriteError(w, http.StatusForbidden, msg)
}

// hint finds the access policies the caller could request a grant under to
// be allowed, by asking the policies about hypothetical grants, and says
// how to request one.
func (p *pipeline) hint(ctx context.Context, in authz.Input) ([]string, string) {
	var candidates []authz.Grant
	namespaces := map[string]string{}
	policies := map[string]*jit.Policy{}
	for _, pol := range p.cfg.Sessions.Requestable(in.Caller, in.Action.Target) {
		ns, ok := pol.RequestableNamespace(in.Action.Namespace)
		if !ok {
			continue
		}
		namespaces[pol.Name], policies[pol.Name] = ns, pol
		candidates = append(candidates, authz.Grant{ID: pol.Name, Policy: pol.Name, Target: pol.Target, Namespace: ns, Permissions: pol.Permissions})
	}
	var names []string
	if len(candidates) > 0 {
		hypo := in
		hypo.Grants = candidates
		d, err := p.cfg.Decider.Decide(ctx, hypo)
		if err != nil {
			p.log.Error("evaluate policies for a hint", "err", err)
		} else if d.Allowed {
			names = d.GrantIDs
		}
	}
	// Suggest first what is quickest to get and grants least.
	slices.SortStableFunc(names, func(a, b string) int {
		pa, pb := policies[a], policies[b]
		return cmp.Or(cmp.Compare(pa.Approval.Required, pb.Approval.Required), cmp.Compare(breadth(pa), breadth(pb)))
	})
	if len(names) == 0 {
		return nil, "No access policy you may request allows it; ask your jitproxy administrator."
	}
	cmd := "jitproxy grant request " + names[0]
	if ns := namespaces[names[0]]; ns != "" {
		cmd += " --namespace " + ns
	}
	cmd += ` --reason "..."`
	return names, fmt.Sprintf("Access policies that would allow it: %s. Request a grant with: %s", strings.Join(names, ", "), cmd)
}

// breadth is a rough measure of how much a policy grants.
func breadth(p *jit.Policy) int {
	n := 0
	for _, perm := range p.Permissions {
		n += len(perm.Verbs) * max(1, len(perm.Resources)+len(perm.NonResourceURLs))
	}
	return n
}

func newRequestID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func durationMS(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
