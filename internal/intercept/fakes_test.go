package intercept

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"runtime/pprof"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
	"github.com/jitproxy/jitproxy/policies"
)

const (
	testSessionID = "s-abcdefghijklmnop"
	testSecret    = "session-secret-value"
	mintedToken   = "minted-token-for-upstream"
	// The AWS credential the fake broker mints.
	mintedAccessKeyID     = "ASIAMINTEDKEY0000001"
	mintedSecretAccessKey = "minted-secret-access-key-for-upstream"
	mintedSessionToken    = "minted-session-token-for-upstream"
)

// fakeSessions knows one session and returns the grants it is given. It
// is also the harness's Suggester: every one of its policies is requestable.
type fakeSessions struct {
	mu       sync.Mutex
	grants   []*jit.Grant
	ended    bool
	policies []*jit.Policy
	revoked  bool        // by revoke: every watch has ended, and a new one ends at once
	watches  []func()    // the onEnd of every watch neither stopped nor ended
	watched  []string    // grants named to watches
	storeErr error       // returned by AuthenticateSession: the store is down
	active   *jit.Active // what ActiveGrants returned last
	// endAtOnce ends every watch as it begins, before Watch returns: the
	// earliest a grant can end under a request.
	endAtOnce bool
	lock      *jit.Lock    // holds the session: ActiveGrants is a LockedError
	pending   []*jit.Grant // what Pending returns
	held      []string     // Active.Held: grants jit holds back, and why
}

func (f *fakeSessions) Watch(_ string, onEnd func()) (func(string), func()) {
	f.mu.Lock()
	defer f.mu.Unlock()
	switch {
	case f.endAtOnce:
		onEnd()
	case f.revoked:
		go onEnd() // as jit's watches do: in a goroutine of its own
	default:
		f.watches = append(f.watches, onEnd)
	}
	i := len(f.watches) - 1
	return f.noteWatched, func() {
		if i < 0 {
			return
		}
		f.mu.Lock()
		defer f.mu.Unlock()
		f.watches[i] = nil
	}
}

// noteWatched is a watch's setGrant.
func (f *fakeSessions) noteWatched(grantID string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.watched = append(f.watched, grantID)
}

// revoke ends every watch, as a revocation seen by the jit service would.
func (f *fakeSessions) revoke() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = true
	for i, end := range f.watches {
		if end != nil {
			go end()
			f.watches[i] = nil
		}
	}
}

func (f *fakeSessions) session() *jit.Session {
	return &jit.Session{ID: testSessionID, Agent: "claude", User: "alice", Groups: []string{"developers"}, ExpiresAt: time.Now().Add(time.Hour)}
}

func (f *fakeSessions) AuthenticateSession(_ context.Context, id string, sec secret.Value) (*jit.Session, error) {
	f.mu.Lock()
	storeErr := f.storeErr
	f.mu.Unlock()
	if storeErr != nil {
		return nil, storeErr
	}
	if id != testSessionID || !sec.Equal(testSecret) {
		return nil, jit.ErrUnauthenticated
	}
	return f.session(), nil
}

func (f *fakeSessions) ActiveGrants(context.Context, string) (*jit.Active, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.ended {
		return nil, jit.ErrUnauthenticated
	}
	if f.lock != nil {
		return nil, &jit.LockedError{Lock: f.lock}
	}
	now := time.Now()
	var out []*jit.Grant
	for _, g := range f.grants {
		if now.Before(g.ExpiresAt) {
			out = append(out, g)
		}
	}
	// The same set while the grants in force are the same, as jit's cache
	// returns it: the pipeline converts a set for policies once per tunnel.
	if f.active == nil || !slices.Equal(f.active.Grants, out) {
		f.active = &jit.Active{Session: f.session(), Grants: out, Held: f.held}
	}
	return f.active, nil
}

func (f *fakeSessions) Suggest(ctx context.Context, _ access.Caller, a access.Action, permits func(context.Context, []jit.Candidate) ([]string, error)) (jit.Suggestion, error) {
	return jit.SuggestAmong(ctx, f.policies, a, permits)
}

func (f *fakeSessions) Pending(context.Context, access.Caller, access.Action, []string) []*jit.Grant {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pending
}

func (f *fakeSessions) setGrants(gs ...*jit.Grant) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.grants = gs
}

// fakeCredentials hands out one token and counts requests.
type fakeCredentials struct {
	calls atomic.Int32
	err   error
	mu    sync.Mutex
	last  broker.Request
}

func (f *fakeCredentials) Credential(_ context.Context, req broker.Request) (broker.Credential, error) {
	f.calls.Add(1)
	f.mu.Lock()
	f.last = req
	f.mu.Unlock()
	if f.err != nil {
		return broker.Credential{}, f.err
	}
	return broker.Credential{
		Token:       secret.Value(mintedToken),
		AccessKeyID: mintedAccessKeyID, SecretAccessKey: mintedSecretAccessKey, SessionToken: mintedSessionToken,
		ExpiresAt: req.GrantExpiresAt, Subject: "sa",
	}, nil
}

// lastEvent waits for an audit event and returns the latest.
func lastEvent(t *testing.T, l *audittest.Log) audit.Event {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if evs := l.Events(); len(evs) > 0 {
			return evs[len(evs)-1]
		}
		if time.Now().After(deadline) {
			t.Fatal("no audit event")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// panicProtocol panics on classification.
type panicProtocol struct{ *kube.Protocol }

func (panicProtocol) Classify(*http.Request, func() ([]byte, error)) (access.Action, error) {
	panic("classifier bug")
}

func podReaderGrant(ttl time.Duration) *jit.Grant {
	return &jit.Grant{
		ID: "g-read", Policy: "pod-reader", Target: "demo", Namespace: "demo", User: "alice",
		State: jit.StateActive, ExpiresAt: time.Now().Add(ttl),
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		Credential:  jit.CredentialSpec{Provider: "tokenrequest"},
	}
}

// harness runs a Proxy in front of an httptest upstream.
type harness struct {
	proxy    *Proxy
	proxyURL *url.URL
	ca       *CA
	sessions *fakeSessions
	creds    *fakeCredentials
	audit    *audittest.Log
	upstream *httptest.Server
	// upstreamConns counts the connections the upstream accepted.
	upstreamConns atomic.Int64
}

type harnessOptions struct {
	handler  http.Handler
	protocol Protocol
	// untrustedUpstream makes the target's CA one that did not sign the upstream.
	untrustedUpstream bool
	// noDiscovery leaves the target without a discovery identity.
	noDiscovery bool
	// policies replaces the shipped Rego policies.
	policies fs.FS
	// config adjusts the proxy's configuration before it starts.
	config func(*Config)
	// decider replaces the policy engine built from policies.
	decider Decider
	// auditor replaces the recording audit log (h.audit then stays empty).
	auditor Auditor
	// quietUpstream drops the upstream's log: a benchmark's end closes
	// connections in the middle of their handshakes.
	quietUpstream bool
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	if o.handler == nil {
		o.handler = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte(`{"kind":"PodList"}`)) })
	}
	if o.protocol == nil {
		o.protocol = kube.New()
	}
	h := &harness{sessions: &fakeSessions{}, creds: &fakeCredentials{}, audit: &audittest.Log{}}
	up := httptest.NewUnstartedServer(o.handler)
	up.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			h.upstreamConns.Add(1)
		}
	}
	if o.quietUpstream {
		up.Config.ErrorLog = log.New(io.Discard, "", 0)
	}
	up.StartTLS()
	h.upstream = up
	t.Cleanup(up.Close)
	pool := x509.NewCertPool()
	if !o.untrustedUpstream {
		pool.AddCert(up.Certificate())
	} else {
		// Every httptest server shares one certificate: trust an unrelated CA.
		other, _, err := LoadOrCreateCA(t.TempDir(), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		pool.AddCert(other.Cert)
	}
	upURL, _ := url.Parse(up.URL)
	ca, _, err := LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	h.ca = ca
	if o.decider == nil {
		o.decider = newEngine(t, o.policies)
	}
	if o.auditor == nil {
		o.auditor = h.audit
	}
	discovery := &CredentialSource{Provider: "tokenrequest", Options: map[string]string{"serviceAccount": "default", "serviceAccountNamespace": "default"}}
	if o.noDiscovery {
		discovery = nil
	}
	cfg := Config{
		CA: ca, Sessions: h.sessions, Policies: PolicySet{Decider: o.decider, Access: h.sessions}, Credentials: h.creds, Audit: o.auditor,
		MaxBodyBytes: 1 << 10,
		Targets: []*Target{{
			Name: "demo", Hosts: []string{"kubernetes.demo"}, Upstream: upURL, Protocol: o.protocol,
			Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}},
			Discovery: discovery,
		}},
	}
	if o.config != nil {
		o.config(&cfg)
	}
	h.proxy, err = New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// The proxy's goroutines, and those they start, carry the profiler
	// label side=proxy: `go tool pprof -tagfocus side=proxy` shows the
	// proxy's share of a benchmark's CPU profile.
	go pprof.Do(ctx, pprof.Labels("side", "proxy"), func(ctx context.Context) { done <- h.proxy.Serve(ctx, ln) })
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("Serve() = %v", err)
		}
	})
	h.proxyURL = &url.URL{Scheme: "http", Host: ln.Addr().String(), User: url.UserPassword(testSessionID, testSecret)}
	return h
}

// newEngine compiles the Rego policies in dir, the shipped ones if nil.
func newEngine(t testing.TB, dir fs.FS) *authz.Engine {
	t.Helper()
	if dir == nil {
		dir = policies.Authz()
	}
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := authz.New(context.Background(), authz.Config{Policies: dir, Builtins: []authz.Builtin{ps.Builtin()}})
	if err != nil {
		t.Fatal(err)
	}
	return engine
}

// allowDecider allows every request with every grant it is given, without
// evaluating policies: what is left of the pipeline when OPA is taken out.
type allowDecider struct{}

func (allowDecider) Decide(_ context.Context, in authz.Input) (authz.Decision, error) {
	ids := make([]string, in.Grants.Len())
	for i, g := range in.Grants.Grants() {
		ids[i] = g.ID
	}
	return authz.Decision{Allowed: true, GrantIDs: ids, Reasons: ids}, nil
}

func (allowDecider) UsesOldObject() bool { return false }

// countingAuditor counts events and keeps none.
type countingAuditor struct{ n atomic.Int64 }

func (a *countingAuditor) Record(context.Context, audit.Event) error {
	a.n.Add(1)
	return nil
}

// client returns an HTTP client that uses the proxy with the given
// credential and trusts the jitproxy CA.
func (h *harness) client(user *url.Userinfo) *http.Client {
	u := *h.proxyURL
	u.User = user
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.ca.CertPEM)
	return &http.Client{Transport: &http.Transport{
		Proxy:             http.ProxyURL(&u),
		TLSClientConfig:   &tls.Config{RootCAs: pool},
		DisableKeepAlives: false,
	}, Timeout: 10 * time.Second}
}

func (h *harness) agent() *http.Client { return h.client(h.proxyURL.User) }
