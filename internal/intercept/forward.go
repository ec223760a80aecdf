package intercept

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/elazarl/goproxy"
	"golang.org/x/sync/errgroup"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Sessions authenticates agent sessions and returns their active grants.
type Sessions interface {
	AuthenticateSession(ctx context.Context, id string, sec secret.Value) (*jit.Session, error)
	// ActiveGrants returns the session and its grants in force; the same
	// *jit.Active while they stay the same.
	ActiveGrants(ctx context.Context, sessionID string) (*jit.Active, error)
	// Pending returns the caller's grant requests still waiting for
	// approval under the named access policies that would cover action,
	// for a denial's hint; none when they cannot be read.
	Pending(ctx context.Context, c access.Caller, action access.Action, policies []string) []*jit.Grant
	// Watch follows a request's session, and its grant once named with
	// setGrant, so that a stream ends when either ends: onEnd is called, at
	// most once, from another goroutine, and possibly after stop. stop
	// must be called when the request ends.
	Watch(sessionID string, onEnd func()) (setGrant func(grantID string), stop func())
}

// Decider evaluates policies.
type Decider interface {
	Decide(ctx context.Context, in authz.Input) (authz.Decision, error)
	// UsesOldObject reports whether policies read input.old_object, which
	// costs a read of the stored object per change.
	UsesOldObject() bool
}

// Suggester says which access policies the caller could request a grant
// under to be allowed action; permits evaluates the authorization policies
// for candidate grants. *jit.Policies is one.
type Suggester interface {
	Suggest(ctx context.Context, c access.Caller, action access.Action, permits func(context.Context, []jit.Candidate) ([]string, error)) (jit.Suggestion, error)
}

// PolicySet is the policies a request is decided with: the authorization
// policies, and the access policies a denied caller is pointed to. The two
// are in force together; a reload replaces both at once.
type PolicySet struct {
	// Decider evaluates the authorization policies. A request is refused
	// (500) while there is none.
	Decider Decider
	// Access finds the access policies a denied caller could request a
	// grant under. Nil: a denial suggests none.
	Access Suggester
	// Shadow, if set, is a candidate set of authorization policies (shadow
	// mode): every decision the pipeline enforces is made by Shadow too,
	// after Decider's and with the same input, and one that differs is
	// logged and counted (TargetMetrics.Shadow). Its decision never
	// changes the outcome, and its error is only logged and counted. Nil:
	// none.
	Shadow Decider
}

// Policies returns s: a PolicySet is a source whose policies never change.
func (s PolicySet) Policies() PolicySet { return s }

// PolicySource gives the policies in force. The pipeline takes them once
// per request, when the request arrives, and makes every decision and hint
// of that request with them: a reload takes effect for the requests that
// arrive after it, never in the middle of one. Policies must be safe for
// concurrent use and cheap: it is called for every request.
type PolicySource interface {
	Policies() PolicySet
}

// Credentials returns the credential for a grant on a target.
type Credentials interface {
	Credential(ctx context.Context, req broker.Request) (broker.Credential, error)
}

// Auditor records audit events.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Config configures a Proxy.
type Config struct {
	CA          *CA          // signs leaf certificates; required
	Targets     []*Target    // CONNECTs to any other host are refused
	Sessions    Sessions     // required
	Policies    PolicySource // required; a PolicySet for policies that never change
	Credentials Credentials  // required
	Audit       Auditor      // required
	// MaxBodyBytes caps a request body that policies inspect; larger
	// requests are refused. Default 4 MiB.
	MaxBodyBytes int64
	// ReadHeaderTimeout bounds reading a CONNECT request, the TLS handshake
	// of a tunnel and each request's headers; default 10s.
	ReadHeaderTimeout time.Duration
	// BodyTimeout bounds reading a request body (not an upgraded stream's);
	// a slower client is answered 408 or cut off. Default 60s.
	BodyTimeout time.Duration
	// IdleTimeout closes a tunnel or proxy connection that carries no
	// request for this long; default 5m.
	IdleTimeout time.Duration
	// MaxTunnelsPerSession caps the tunnels one session holds open at
	// once; a CONNECT beyond it is refused with 429. Default 64.
	MaxTunnelsPerSession int
	// UpstreamTimeout bounds jitproxy's own requests to a target (the dry
	// run that computes a write's object); default 60s.
	UpstreamTimeout time.Duration
	// ShutdownTimeout bounds how long Serve waits for open requests when
	// its context ends; default 10s.
	ShutdownTimeout time.Duration
	// Metrics returns the request metrics of a target, by its name and
	// kind; it is called once per target, by New. Nil: nothing is
	// measured.
	Metrics func(target, kind string) TargetMetrics
	// Profiles, if set, records the actions of requests that learning
	// grants allow, as they are forwarded. Nil: nothing is recorded.
	Profiles ProfileRecorder
	Now      func() time.Time
	Logger   *slog.Logger
}

// ProfileRecorder records the action of a request a learning grant
// allowed. Record is called on the request path: it must not block, and
// cannot fail the request.
type ProfileRecorder interface {
	Record(grantID string, grantExpires time.Time, a *access.Action)
}

// TargetMetrics records the requests of one target. Its methods are called
// on the request path: they must be cheap, allocate nothing and be safe for
// concurrent use.
type TargetMetrics interface {
	// Request counts a request as it ends, with its decision: "allow"
	// (policy allowed it), "deny" (policy denied it, or it was refused:
	// session ended, bad request, grant ended), or "error" (jitproxy could
	// not decide or serve it, and answered 5xx itself).
	Request(decision string)
	// Stage observes how long a request spent in a stage: "classify"
	// (reading what it asks, its body included when policies need it),
	// "decide" (each policy evaluation), "credential" (from the cache or
	// minted), "upstream" (from forwarding to the target's response
	// headers).
	Stage(stage string, d time.Duration)
	// Shadow counts an enforced decision that the shadow policies
	// (PolicySet.Shadow) decided too: "same", "differs" (allowed, the
	// permitting grants or the reasons differ) or "error" (the shadow
	// policies could not be evaluated).
	Shadow(result string)
}

// Decisions and stages of TargetMetrics.
const (
	decisionAllow = "allow"
	decisionDeny  = "deny"
	decisionError = "error"

	stageClassify   = "classify"
	stageDecide     = "decide"
	stageCredential = "credential"
	stageUpstream   = "upstream"

	shadowSame    = "same"
	shadowDiffers = "differs"
	shadowError   = "error"
)

// noMetrics measures nothing.
type noMetrics struct{}

func (noMetrics) Request(string)              {}
func (noMetrics) Stage(string, time.Duration) {}
func (noMetrics) Shadow(string)               {}

// Proxy is the forward proxy agents use as HTTPS_PROXY.
type Proxy struct {
	cfg      Config
	targets  *targets
	leaves   *leafCerts
	gp       *goproxy.ProxyHttpServer
	pipeline *pipeline
	log      *slog.Logger
	tunnels  *tunnelListener
	open     *sessionTunnels
}

// New validates cfg and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	var errs []error
	if cfg.CA == nil {
		errs = append(errs, errors.New("CA is required"))
	}
	if cfg.Sessions == nil {
		errs = append(errs, errors.New("Sessions is required"))
	}
	if cfg.Policies == nil {
		errs = append(errs, errors.New("Policies is required"))
	}
	if cfg.Credentials == nil {
		errs = append(errs, errors.New("Credentials is required"))
	}
	if cfg.Audit == nil {
		errs = append(errs, errors.New("Audit is required"))
	}
	ts, err := newTargets(cfg.Targets)
	errs = append(errs, err)
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("intercept: %w", err)
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = 4 << 20
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.ReadHeaderTimeout, 10*time.Second)
	def(&cfg.BodyTimeout, time.Minute)
	def(&cfg.IdleTimeout, 5*time.Minute)
	def(&cfg.UpstreamTimeout, time.Minute)
	def(&cfg.ShutdownTimeout, 10*time.Second)
	if cfg.MaxTunnelsPerSession <= 0 {
		cfg.MaxTunnelsPerSession = 64
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Proxy{cfg: cfg, targets: ts, leaves: newLeafCerts(cfg.CA, cfg.Now), log: cfg.Logger,
		open: &sessionTunnels{max: cfg.MaxTunnelsPerSession, open: map[string]int{}}}
	errLog := log.New(slogWriter{cfg.Logger}, "", 0)
	p.pipeline = &pipeline{cfg: &p.cfg, log: cfg.Logger, errLog: errLog, upstreams: map[*Target]*upstream{}, buffers: &bufferPool{}}
	for _, t := range cfg.Targets {
		u := newUpstream(p.pipeline, t, errLog)
		u.metrics = noMetrics{}
		if cfg.Metrics != nil {
			u.metrics = cfg.Metrics(t.Name, t.Protocol.Kind())
		}
		p.pipeline.upstreams[t] = u
	}
	p.gp = p.newGoproxy()
	return p, nil
}

// errNoTunnelling is what goproxy's dialers return: jitproxy never opens a
// connection on goproxy's behalf.
var errNoTunnelling = errors.New("jitproxy does not tunnel: only configured targets are intercepted")

// newGoproxy configures goproxy to parse CONNECT and hand over tunnels, and
// nothing else. Its defaults skip upstream TLS verification, dial through
// the environment's proxy and tunnel any CONNECT no handler refuses; each
// of these is replaced here, and TestGoproxyDefaultsReplaced fails if one
// comes back.
func (p *Proxy) newGoproxy() *goproxy.ProxyHttpServer {
	gp := goproxy.NewProxyHttpServer()
	gp.Logger = goproxyLogger{p.log}
	refuse := func(ctx context.Context, network, addr string) (net.Conn, error) { return nil, errNoTunnelling }
	gp.Tr = &http.Transport{
		Proxy:           nil,
		DialContext:     refuse,
		DialTLSContext:  refuse,
		TLSClientConfig: &tls.Config{MinVersion: tls.VersionTLS12},
	}
	gp.ConnectDial = nil
	gp.ConnectDialWithReq = func(*http.Request, string, string) (net.Conn, error) { return nil, errNoTunnelling }
	gp.ConnectionErrHandler = func(w io.Writer, _ *goproxy.ProxyCtx, err error) {
		p.log.Warn("proxy connection error", "err", err)
		io.WriteString(w, "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: 12\r\nConnection: close\r\n\r\nbad gateway\n")
	}
	gp.NonproxyHandler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			io.WriteString(w, "ok\n")
			return
		}
		http.Error(w, "jitproxy: this is a forward proxy; set HTTPS_PROXY to it", http.StatusNotFound)
	})
	// Plain-HTTP proxying: refused, never forwarded.
	gp.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		return r, goproxy.NewResponse(r, "text/plain", http.StatusForbidden,
			"jitproxy: plain HTTP is not proxied; only HTTPS to configured targets is\n")
	})
	gp.OnRequest().HandleConnectFunc(p.handleConnect)
	return gp
}

type goproxyLogger struct{ log *slog.Logger }

func (l goproxyLogger) Printf(format string, v ...any) {
	l.log.Debug(strings.TrimSpace(fmt.Sprintf(format, v...)), "component", "goproxy")
}

// handleConnect authenticates the session, then intercepts target hosts
// and refuses everything else.
func (p *Proxy) handleConnect(host string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	r := ctx.Req
	start := p.cfg.Now()
	ev := audit.Event{
		Type:      audit.TypeRequest,
		RequestID: newRequestID(),
		Action:    &access.Action{Method: http.MethodConnect, Path: host},
	}
	reject := func(status int, reason, msg string, header http.Header) (*goproxy.ConnectAction, string) {
		resp := goproxy.NewResponse(r, "text/plain", status, "jitproxy: "+msg+"\n")
		// The reason phrase says it too: of a refused CONNECT, HTTP clients
		// show the status line, not the body (kubectl: "Unable to connect to
		// the server: jitproxy: ...").
		resp.Status = fmt.Sprintf("%d %s", status, reasonPhrase("jitproxy: "+msg))
		for k, v := range header {
			resp.Header[k] = v
		}
		resp.Header.Set("Connection", "close")
		ev.Decision = &audit.Decision{Reasons: []string{reason}}
		ev.Outcome = &audit.Outcome{Status: status}
		ev.DurationMS = durationMS(p.cfg.Now().Sub(start))
		p.record(r.Context(), ev)
		ctx.Resp = resp
		return &goproxy.ConnectAction{Action: goproxy.ConnectReject}, host
	}
	id, sec, err := jit.ParseSessionCredential(r.Header.Get("Proxy-Authorization"))
	if err != nil {
		return reject(http.StatusProxyAuthRequired, "no valid session credential",
			"proxy authentication required: use the proxy URL of your jitproxy session",
			http.Header{"Proxy-Authenticate": {`Basic realm="jitproxy"`}})
	}
	s, err := p.cfg.Sessions.AuthenticateSession(r.Context(), id, sec)
	if err != nil {
		if !errors.Is(err, jit.ErrUnauthenticated) {
			p.log.Error("authenticate session", "request_id", ev.RequestID, "err", err)
			return reject(http.StatusServiceUnavailable, "session store unavailable", "cannot check your session right now; try again", nil)
		}
		return reject(http.StatusProxyAuthRequired, "unknown or expired session",
			"proxy authentication required: unknown or expired session",
			http.Header{"Proxy-Authenticate": {`Basic realm="jitproxy"`}})
	}
	caller := s.Caller()
	caller.AuthMethod, caller.SourceAddr = "proxy-basic", r.RemoteAddr
	ev.Caller = &caller
	t, hostport := p.targets.lookup(host)
	if t == nil {
		return reject(http.StatusForbidden, "host is not a jitproxy target",
			fmt.Sprintf("CONNECT to %s is not allowed: jitproxy intercepts only its configured targets", host), nil)
	}
	if !p.open.acquire(caller.Session) {
		return reject(http.StatusTooManyRequests, "too many open tunnels",
			fmt.Sprintf("your session has %d tunnels open, the most allowed; close some connections", p.cfg.MaxTunnelsPerSession), nil)
	}
	tun := &tunnel{caller: caller, target: t, hostport: hostport}
	release := func() { p.open.release(caller.Session) }
	return &goproxy.ConnectAction{
		Action: goproxy.ConnectHijack,
		Hijack: func(req *http.Request, client net.Conn, _ *goproxy.ProxyCtx) {
			tc := &tunnelConn{Conn: client, tunnel: tun, release: release}
			if _, err := io.WriteString(client, "HTTP/1.1 200 Connection established\r\n\r\n"); err != nil {
				tc.Close()
				return
			}
			p.tunnels.deliver(tc)
		},
	}, host
}

// reasonPhrase makes msg fit a status line: printable ASCII only (a host
// name from the request may be in it), at most 200 bytes.
func reasonPhrase(msg string) string {
	b := []byte(msg)
	for i, c := range b {
		if c < ' ' || c > '~' {
			b[i] = '?'
		}
	}
	if len(b) > 200 {
		b = append(b[:197], "..."...)
	}
	return string(b)
}

func (p *Proxy) record(ctx context.Context, e audit.Event) {
	if err := p.cfg.Audit.Record(context.WithoutCancel(ctx), e); err != nil {
		p.log.Error("record audit event", "type", e.Type, "request_id", e.RequestID, "err", err)
	}
}

// tlsConfig presents, for each tunnel, a leaf certificate for the host the
// agent CONNECTed to, and refuses a handshake for any other name. The name
// is checked on every ClientHello, in GetConfigForClient: a resumed session
// presents no certificate, so a check in GetCertificate alone would let a
// session of a tunnel to one host resume in a tunnel to another.
func (p *Proxy) tlsConfig() *tls.Config {
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			tc, ok := hello.Conn.(*tunnelConn)
			if !ok {
				return nil, errors.New("connection is not a tunnel")
			}
			return p.leaves.get(tc.tunnel.hostname())
		},
	}
	cfg.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		tc, ok := hello.Conn.(*tunnelConn)
		if !ok {
			return nil, errors.New("connection is not a tunnel")
		}
		want := tc.tunnel.hostname()
		if hello.ServerName != "" && !strings.EqualFold(hello.ServerName, want) {
			return nil, fmt.Errorf("TLS server name %q does not match the CONNECT host %q", hello.ServerName, want)
		}
		return nil, nil // cfg itself
	}
	return cfg
}

// Serve accepts proxy connections on ln until ctx ends, then shuts down,
// giving open requests ShutdownTimeout to finish. It returns nil after a
// clean shutdown.
func (p *Proxy) Serve(ctx context.Context, ln net.Listener) error {
	errLog := p.pipeline.errLog
	p.tunnels = newTunnelListener(p.tlsConfig(), ln.Addr())
	outer := &http.Server{
		Handler:           p.gp,
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		ErrorLog:          errLog,
	}
	inner := &http.Server{
		Handler:           p.pipeline,
		ConnContext:       tunnelContext,
		ReadHeaderTimeout: p.cfg.ReadHeaderTimeout,
		IdleTimeout:       p.cfg.IdleTimeout,
		ErrorLog:          errLog,
	}
	g, gctx := errgroup.WithContext(ctx)
	serve := func(srv *http.Server, l net.Listener) func() error {
		return func() error {
			if err := srv.Serve(l); !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		}
	}
	g.Go(serve(outer, ln))
	g.Go(serve(inner, p.tunnels))
	g.Go(func() error {
		<-gctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.cfg.ShutdownTimeout)
		defer cancel()
		outer.Shutdown(sctx)
		inner.Shutdown(sctx)
		p.tunnels.Close()
		outer.Close()
		inner.Close()
		return nil
	})
	return g.Wait()
}

// slogWriter sends net/http's server log (TLS handshake errors, recovered
// panics) to the structured log.
type slogWriter struct{ log *slog.Logger }

func (w slogWriter) Write(b []byte) (int, error) {
	w.log.Warn(strings.TrimSpace(string(b)), "component", "http")
	return len(b), nil
}
