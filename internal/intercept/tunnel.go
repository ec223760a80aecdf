package intercept

import (
	"context"
	"crypto/tls"
	"net"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// tunnel is what the CONNECT established: who, to which target and host.
type tunnel struct {
	caller   access.Caller // session authenticated at CONNECT
	target   *Target
	hostport string // normalized host:port of the CONNECT

	grants atomic.Pointer[policyGrants] // see tunnel.policyGrants
	held   atomic.Pointer[heldGrants]   // see tunnel.usable
}

// policyGrants is a set of grants in force and the policies' view of it.
type policyGrants struct {
	active *jit.Active
	set    *authz.GrantSet
}

func (t *tunnel) hostname() string {
	h, _, _ := net.SplitHostPort(t.hostport)
	return h
}

// addressedBy reports whether host, a request's Host, names the tunnel's
// host and port. The host as clients write it (the tunnel's own, or
// without the default port) is matched without normalizing, which costs
// allocations.
func (t *tunnel) addressedBy(host string) bool {
	if h, ok := strings.CutSuffix(t.hostport, ":443"); host == t.hostport || ok && host == h {
		return true
	}
	hp, err := normalizeHostPort(host)
	return err == nil && hp == t.hostport
}

// tunnelConn is a hijacked client connection with its tunnel. Closing it
// gives its place back to the session's count of open tunnels.
type tunnelConn struct {
	net.Conn
	tunnel  *tunnel
	release func()
	once    sync.Once
}

func (c *tunnelConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// sessionTunnels counts the open tunnels of each session, up to max.
type sessionTunnels struct {
	mu   sync.Mutex
	max  int
	open map[string]int
}

// acquire counts one more tunnel of the session, unless it holds max.
func (s *sessionTunnels) acquire(session string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[session] >= s.max {
		return false
	}
	s.open[session]++
	return true
}

func (s *sessionTunnels) release(session string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open[session]--; s.open[session] <= 0 {
		delete(s.open, session)
	}
}

// tunnelListener hands hijacked CONNECT tunnels, wrapped in server-side
// TLS, to the http.Server that serves intercepted requests.
type tunnelListener struct {
	conns  chan net.Conn
	tls    *tls.Config
	addr   net.Addr
	once   sync.Once
	closed chan struct{}
}

func newTunnelListener(cfg *tls.Config, addr net.Addr) *tunnelListener {
	return &tunnelListener{conns: make(chan net.Conn), tls: cfg, addr: addr, closed: make(chan struct{})}
}

// deliver passes a tunnel to the server; it closes the connection if the
// listener is closed.
func (l *tunnelListener) deliver(c *tunnelConn) {
	select {
	case l.conns <- tls.Server(c, l.tls):
	case <-l.closed:
		c.Close()
	}
}

func (l *tunnelListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *tunnelListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *tunnelListener) Addr() net.Addr { return l.addr }

type tunnelKey struct{}

// tunnelContext attaches a connection's tunnel to its requests' context.
func tunnelContext(ctx context.Context, c net.Conn) context.Context {
	if tc, ok := c.(*tls.Conn); ok {
		if t, ok := tc.NetConn().(*tunnelConn); ok {
			return context.WithValue(ctx, tunnelKey{}, t.tunnel)
		}
	}
	return ctx
}

func tunnelFrom(ctx context.Context) *tunnel {
	t, _ := ctx.Value(tunnelKey{}).(*tunnel)
	return t
}
