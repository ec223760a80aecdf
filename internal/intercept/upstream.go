package intercept

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

// upstream sends a target's requests: one ReverseProxy per target, whose
// Transport applies each request's credential.
type upstream struct {
	target *Target
	// transport applies the credential of the request's forwarding, then
	// sends with the target's Transport.
	transport http.RoundTripper
	proxy     *httputil.ReverseProxy
	// metrics are the target's; never nil.
	metrics TargetMetrics
}

// forwarding is what the upstream needs to know of one request, carried
// in its context.
type forwarding struct {
	x      *exchange
	action access.Action
	cred   broker.Credential
	// host is the host:port the agent addressed, where the request goes
	// when the target has no fixed upstream.
	host    string
	grantID string
	// start is when the request was forwarded, for the upstream stage.
	start time.Time
}

// streamEnd ends a request when its grant or its session ends. The end may
// be seen before the request is forwarded, while it is, or after; mu
// orders it with the forwarding's start.
type streamEnd struct {
	w *countingWriter // the exchange's

	mu     sync.Mutex
	ended  bool
	cancel context.CancelFunc // the forwarding's, once it began
}

// end notes that the grant or the session ended, before cancelling the
// forwarding (if it began), so that the cancellation can be told from the
// agent's own. An upgraded stream (exec, port-forward) is cut off on the
// agent's side too: the reverse proxy closes only the upstream side, and
// would then wait for the agent to close its half, however long that
// takes.
func (e *streamEnd) end() {
	e.mu.Lock()
	e.ended = true
	cancel := e.cancel
	e.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	e.w.closeHijacked()
}

// begin gives the forwarding's cancel, and calls it at once if the grant
// or session already ended.
func (e *streamEnd) begin(cancel context.CancelFunc) {
	e.mu.Lock()
	e.cancel = cancel
	ended := e.ended
	e.mu.Unlock()
	if ended {
		cancel()
	}
}

func (e *streamEnd) isEnded() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.ended
}

type forwardingKey struct{}

func withForwarding(ctx context.Context, f *forwarding) context.Context {
	return context.WithValue(ctx, forwardingKey{}, f)
}

func forwardingFrom(ctx context.Context) *forwarding {
	f, _ := ctx.Value(forwardingKey{}).(*forwarding)
	return f
}

// errNoForwarding: a request reached an upstream's transport without the
// state the pipeline attaches; a programming error, failed closed.
var errNoForwarding = errors.New("jitproxy: request has no credential attached")

// authorizeError is a failure to apply the credential, not to reach the
// upstream.
type authorizeError struct{ err error }

func (e *authorizeError) Error() string { return e.err.Error() }
func (e *authorizeError) Unwrap() error { return e.err }

// authorizingTransport applies the credential of the request's forwarding
// with the target's protocol, as the last step before sending. The request
// is always one the pipeline made for the upstream, so it may be changed.
type authorizingTransport struct {
	proto Protocol
	next  http.RoundTripper
}

func (t authorizingTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	f := forwardingFrom(r.Context())
	if f == nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, errNoForwarding
	}
	if err := t.proto.Authorize(r, f.action, f.cred); err != nil {
		if r.Body != nil {
			r.Body.Close()
		}
		return nil, &authorizeError{err}
	}
	return t.next.RoundTrip(r)
}

func newUpstream(p *pipeline, t *Target, errLog *log.Logger) *upstream {
	u := &upstream{target: t, transport: authorizingTransport{proto: t.Protocol, next: t.Transport}}
	u.proxy = &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			u.prepare(pr.Out, forwardingFrom(pr.Out.Context()))
		},
		Transport:  u.transport,
		BufferPool: p.buffers,
		ModifyResponse: func(resp *http.Response) error {
			if f := forwardingFrom(resp.Request.Context()); f != nil {
				f.x.status = resp.StatusCode
				u.metrics.Stage(stageUpstream, p.cfg.Now().Sub(f.start))
			}
			return nil
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			f := forwardingFrom(r.Context())
			if f == nil {
				http.Error(w, "jitproxy: internal error", http.StatusInternalServerError)
				return
			}
			if msg := f.endedWhy(r.Context()); msg != "" {
				p.fail(w, f.x, http.StatusForbidden, msg)
				return
			}
			if ae := (*authorizeError)(nil); errors.As(err, &ae) {
				p.log.Warn("apply credential", "request_id", f.x.event.RequestID, "target", t.Name, "err", err)
				p.fail(w, f.x, http.StatusBadGateway, "cannot apply the credential to the request: "+ae.Error())
				return
			}
			p.log.Warn("upstream request failed", "request_id", f.x.event.RequestID, "target", t.Name, "err", err)
			p.fail(w, f.x, http.StatusBadGateway, "the target could not be reached")
		},
		ErrorLog: errLog,
	}
	return u
}

// copyBufferSize is the size of the buffers response bodies are copied
// with: what ReverseProxy allocates for each response when it has no
// BufferPool.
const copyBufferSize = 32 << 10

// bufferPool lends ReverseProxy its copy buffers, so that a response does
// not cost a fresh 32 KiB (allocated, zeroed, then collected). It holds
// array pointers, so that neither Get nor Put allocates. It is safe for
// concurrent use; the zero bufferPool is ready.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte {
	if a, ok := b.pool.Get().(*[copyBufferSize]byte); ok {
		return a[:]
	}
	return new([copyBufferSize]byte)[:]
}

// Put takes back a buffer Get lent; any other slice is dropped.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	b.pool.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}

// prepare makes out a request to the upstream that carries only the
// headers the protocol allows; the credential is applied by the transport.
// With no forwarding state it gets no URL, and the transport refuses it.
func (u *upstream) prepare(out *http.Request, f *forwarding) {
	if f == nil {
		return
	}
	(&httputil.ProxyRequest{Out: out}).SetURL(u.url(f.host))
	if rw, ok := u.target.Protocol.(UpstreamRewriter); ok && u.target.Upstream != nil {
		rw.RewriteForUpstream(out, f.host)
	}
	out.Header = u.target.Protocol.OutboundHeader(out.Header)
}

// url is where requests to host go: the fixed upstream, or host itself
// (without the default port, as HTTP clients write it).
func (u *upstream) url(host string) *url.URL {
	if u.target.Upstream != nil {
		return u.target.Upstream
	}
	if h, port, err := net.SplitHostPort(host); err == nil && port == "443" {
		host = h
	}
	return &url.URL{Scheme: "https", Host: host}
}

// endedWhy says why ctx, the context of f's request, ended, if the grant
// or session ended or the grant expired; else "".
func (f *forwarding) endedWhy(ctx context.Context) string {
	switch err := ctx.Err(); {
	case err == nil:
		return ""
	case f.x.end.isEnded():
		return fmt.Sprintf("grant %s or your session has ended", f.grantID)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Sprintf("grant %s has expired", f.grantID)
	}
	return ""
}

// send sends a request the protocol made (a dry run) to the upstream, with
// the same URL, header allow-list and credential as forwarded requests.
func (u *upstream) send(ctx context.Context, f *forwarding, req *http.Request) (*http.Response, error) {
	out := req.WithContext(withForwarding(ctx, f))
	out.URL = &url.URL{Path: req.URL.Path, RawQuery: req.URL.RawQuery}
	if _, ok := out.Header["User-Agent"]; !ok {
		out.Header = out.Header.Clone()
		out.Header.Set("User-Agent", "jitproxy")
	}
	u.prepare(out, f)
	return u.transport.RoundTrip(out)
}

// forward sends r upstream, ending it when the grant expires (until) or
// when the grant or session ends (f.x.end).
//
// Neither needs a goroutine per request: the grant's end cancels the
// context (streamEnd.end), and its expiry is the context's deadline.
func (u *upstream) forward(w http.ResponseWriter, r *http.Request, f *forwarding, until time.Time) {
	ctx, cancel := context.WithDeadline(r.Context(), until)
	defer cancel()
	f.x.end.begin(cancel)
	if r.Header.Get("Upgrade") != "" {
		// An upgraded stream whose grant expires is cut off on the agent's
		// side too, as one whose grant ends is (streamEnd.end).
		stop := context.AfterFunc(ctx, func() {
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				f.x.w.closeHijacked()
			}
		})
		defer stop()
	}
	defer func() {
		if msg := f.endedWhy(ctx); msg != "" && f.x.errMsg == "" {
			f.x.errMsg = msg + " while the response was streaming"
		}
	}()
	u.proxy.ServeHTTP(w, r.WithContext(withForwarding(ctx, f)))
}
