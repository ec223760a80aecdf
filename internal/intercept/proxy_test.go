package intercept

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// TestGoproxyDefaultsReplaced fails if any of goproxy's unsafe defaults
// (upstream TLS unverified, proxying through the environment, tunnelling
// CONNECTs nobody refused) comes back.
func TestGoproxyDefaultsReplaced(t *testing.T) {
	// A proxy named by the environment must never be used.
	var envProxyHits atomic.Int32
	envProxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer envProxy.Close()
	go func() {
		for {
			c, err := envProxy.Accept()
			if err != nil {
				return
			}
			envProxyHits.Add(1)
			c.Close()
		}
	}()
	t.Setenv("HTTPS_PROXY", "http://"+envProxy.Addr().String())
	t.Setenv("HTTP_PROXY", "http://"+envProxy.Addr().String())
	t.Setenv("https_proxy", "http://"+envProxy.Addr().String())

	h := newHarness(t, harnessOptions{})
	tr := h.proxy.gp.Tr
	if tr.Proxy != nil {
		t.Error("goproxy transport follows a proxy")
	}
	if tr.TLSClientConfig == nil || tr.TLSClientConfig.InsecureSkipVerify {
		t.Error("goproxy transport skips TLS verification")
	}
	if h.proxy.gp.ConnectDial != nil {
		t.Error("goproxy ConnectDial is set")
	}
	for name, dial := range map[string]func() (net.Conn, error){
		"Tr.DialContext": func() (net.Conn, error) {
			return tr.DialContext(context.Background(), "tcp", h.upstream.Listener.Addr().String())
		},
		"Tr.DialTLSContext": func() (net.Conn, error) {
			return tr.DialTLSContext(context.Background(), "tcp", h.upstream.Listener.Addr().String())
		},
		"ConnectDialWithReq": func() (net.Conn, error) {
			return h.proxy.gp.ConnectDialWithReq(nil, "tcp", h.upstream.Listener.Addr().String())
		},
	} {
		if c, err := dial(); err == nil {
			c.Close()
			t.Errorf("%s dialled", name)
		}
	}

	// A CONNECT to a host that is not a target is refused, not tunnelled.
	var upstreamHits atomic.Int32
	victim, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer victim.Close()
	go func() {
		for {
			c, err := victim.Accept()
			if err != nil {
				return
			}
			upstreamHits.Add(1)
			c.Close()
		}
	}()
	status, body := rawConnect(t, h, victim.Addr().String(), true)
	if status != http.StatusForbidden || !strings.Contains(body, "intercepts only its configured targets") {
		t.Errorf("CONNECT to a non-target = %d %q, want 403", status, body)
	}
	// Plain HTTP through the proxy is refused, not forwarded.
	resp, err := h.agent().Get("http://" + victim.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Errorf("plain HTTP via proxy = %d, want 403", resp.StatusCode)
	}
	// An intercepted request works and reaches the real upstream directly.
	h.sessions.setGrants(podReaderGrant(time.Hour))
	if resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("intercepted request: %v %v", resp, err)
	}
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("the non-target got %d connections", n)
	}
	if n := envProxyHits.Load(); n != 0 {
		t.Errorf("the environment's proxy got %d connections", n)
	}
}

// rawConnect sends a CONNECT and returns the status and body.
func rawConnect(t *testing.T, h *harness, hostport string, withAuth bool) (int, string) {
	t.Helper()
	c, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: hostport}, Host: hostport, Header: http.Header{}}
	if withAuth {
		p, _ := h.proxyURL.User.Password()
		req.SetBasicAuth(h.proxyURL.User.Username(), p)
		req.Header["Proxy-Authorization"] = req.Header["Authorization"]
		delete(req.Header, "Authorization")
	}
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestProxyAuthentication(t *testing.T) {
	tests := []struct {
		name string
		user *url.Userinfo
	}{
		{name: "no credential", user: nil},
		{name: "wrong secret", user: url.UserPassword(testSessionID, "wrong")},
		{name: "not a session", user: url.UserPassword("alice", testSecret)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.sessions.setGrants(podReaderGrant(time.Hour))
			_, err := h.client(tt.user).Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
			if err == nil || !strings.Contains(err.Error(), "jitproxy: proxy authentication required") {
				t.Errorf("Get() error = %v, want 407", err)
			}
			e := lastEvent(t, h.audit)
			if e.Outcome.Status != 407 || e.Action.Method != "CONNECT" || h.creds.calls.Load() != 0 {
				t.Errorf("audit = %+v, credentials asked %d times", e, h.creds.calls.Load())
			}
		})
	}
}

// TestConnectRefusalsSayWhy: a refused CONNECT carries its message in the
// status line's reason phrase, since that is all an HTTP client shows of a
// failed CONNECT (Go's, so kubectl's: "Unable to connect to the server:
// REASON"); the body says it again for clients that read it.
func TestConnectRefusalsSayWhy(t *testing.T) {
	tests := []struct {
		name     string
		user     *url.Userinfo
		storeErr error
		url      string
		want     string
	}{
		{name: "session store down", user: url.UserPassword(testSessionID, testSecret), storeErr: errors.New("load session: dial tcp 127.0.0.1:6379: connect: connection refused"),
			url: "https://kubernetes.demo/api", want: "jitproxy: cannot check your session right now; try again"},
		{name: "unknown session", user: url.UserPassword(testSessionID, "wrong"),
			url: "https://kubernetes.demo/api", want: "jitproxy: proxy authentication required: unknown or expired session"},
		{name: "not a target", user: url.UserPassword(testSessionID, testSecret),
			url: "https://example.com/", want: "jitproxy: CONNECT to example.com:443 is not allowed: jitproxy intercepts only its configured targets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.sessions.storeErr = tt.storeErr
			_, err := h.client(tt.user).Get(tt.url)
			if err == nil || !strings.HasSuffix(err.Error(), ": "+tt.want) {
				t.Errorf("Get() error = %v, want one ending in %q", err, tt.want)
			}
			if tt.storeErr != nil && strings.Contains(err.Error(), "6379") {
				t.Errorf("Get() error = %v: the store's error reached the agent", err)
			}
		})
	}
}

func TestAllowedRequestGetsMintedCredential(t *testing.T) {
	var got http.Header
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Header.Clone()
		w.Write([]byte(`{"kind":"PodList"}`))
	})})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	req, _ := http.NewRequest("GET", "https://kubernetes.demo/api/v1/namespaces/demo/pods", nil)
	req.Header.Set("Authorization", "Bearer agent-held-token")
	req.Header.Set("Impersonate-User", "system:admin")
	req.Header.Set("Impersonate-Group", "system:masters")
	resp, err := h.agent().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != `{"kind":"PodList"}` {
		t.Fatalf("response %d %s", resp.StatusCode, body)
	}
	if got.Get("Authorization") != "Bearer "+mintedToken || got.Get("Impersonate-User") != "" || got.Get("Impersonate-Group") != "" || got.Get("Proxy-Authorization") != "" {
		t.Errorf("upstream saw headers %v", got)
	}
	e := lastEvent(t, h.audit)
	want := audit.Event{
		Type:       audit.TypeRequest,
		Caller:     &access.Caller{Session: testSessionID, Agent: "claude", User: "alice", Groups: []string{"developers"}, AuthMethod: "proxy-basic"},
		Action:     &access.Action{Kind: "kubernetes", Target: "demo", Method: "GET", Path: "/api/v1/namespaces/demo/pods", Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		Decision:   &audit.Decision{Allowed: true, Reasons: []string{"permitted by grant g-read"}},
		Grant:      &audit.Grant{ID: "g-read", Policy: "pod-reader", Namespace: "demo"},
		Credential: &audit.Credential{Provider: "tokenrequest", Target: "demo", Subject: "sa"},
		Outcome:    &audit.Outcome{Status: 200, Bytes: int64(len(body))},
	}
	requestID := e.RequestID
	e.RequestID, e.DurationMS, e.Caller.SourceAddr, e.Grant.ExpiresAt, e.Credential.ExpiresAt = "", 0, "", time.Time{}, time.Time{}
	if diff := cmp.Diff(want, e); diff != "" {
		t.Errorf("audit event (-want +got):\n%s", diff)
	}
	// Before the credential was minted, the decision was recorded.
	evs := h.audit.Events()
	if len(evs) != 2 || evs[0].Type != audit.TypeRequestDecided || evs[0].RequestID != requestID || evs[0].Outcome != nil || !evs[0].Decision.Allowed {
		t.Errorf("events = %+v, want the decision before the request", evs)
	}
	if resp.Header.Get(RequestIDHeader) == "" {
		t.Error("no request ID header")
	}
}

func kubeStatus(t *testing.T, resp *http.Response) metav1.Status {
	t.Helper()
	defer resp.Body.Close()
	var st metav1.Status
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestDenials(t *testing.T) {
	readerPolicy := &jit.Policy{
		Name: "pod-reader", Target: "demo", Namespaces: []string{"demo"},
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
	}
	tests := []struct {
		name       string
		grants     []*jit.Grant
		policies   []*jit.Policy
		method     string
		path       string
		query      string
		body       string
		ctype      string
		wantStatus int
		wantMsg    string
	}{
		{
			name: "no grant names the policy and the command", policies: []*jit.Policy{readerPolicy},
			method: "GET", path: "/api/v1/namespaces/demo/pods", wantStatus: 403,
			wantMsg: `jitproxy denied list pods in namespace "demo": no active grant permits this request. Access policies that would allow it: pod-reader. Request a grant with: jitproxy grant request pod-reader --namespace demo --reason "..."`,
		},
		{
			name: "no policy could help", policies: []*jit.Policy{readerPolicy},
			method: "DELETE", path: "/api/v1/namespaces/demo/pods/web", wantStatus: 403,
			wantMsg: `jitproxy denied delete pods "web" in namespace "demo": no active grant permits this request. No access policy you may request allows it; ask your jitproxy administrator.`,
		},
		{
			name: "wrong namespace", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "GET", path: "/api/v1/namespaces/prod/pods", wantStatus: 403, wantMsg: `denied list pods in namespace "prod"`,
		},
		{
			name: "wrong verb", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "DELETE", path: "/api/v1/namespaces/demo/pods/web", wantStatus: 403, wantMsg: `denied delete pods "web"`,
		},
		{
			name: "expired grant", grants: []*jit.Grant{podReaderGrant(-time.Second)},
			method: "GET", path: "/api/v1/namespaces/demo/pods", wantStatus: 403, wantMsg: "no active grant",
		},
		{
			name: "body too large to inspect", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "POST", path: "/api/v1/namespaces/demo/pods", body: `{"x":"` + strings.Repeat("a", 2000) + `"}`, ctype: "application/json",
			wantStatus: 413, wantMsg: "over 1024 bytes cannot be inspected",
		},
		{
			name: "body that cannot be inspected", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "POST", path: "/api/v1/namespaces/demo/pods", body: "\xa0", ctype: "application/cbor",
			wantStatus: 415, wantMsg: "send JSON",
		},
		{
			name: "ambiguous path", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "GET", path: "/api/v1/namespaces/demo/../kube-system/pods", wantStatus: 400, wantMsg: "'..'",
		},
		{
			name: "credential in the query", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			method: "GET", path: "/api/v1/namespaces/demo/pods", query: "access_token=stolen", wantStatus: 400,
			wantMsg: `credentials in the query string are refused (parameter "access_token")`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upstreamHits atomic.Int32
			h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstreamHits.Add(1) })})
			h.sessions.setGrants(tt.grants...)
			h.sessions.policies = tt.policies
			req, _ := http.NewRequest(tt.method, "https://kubernetes.demo/", strings.NewReader(tt.body))
			req.URL.Path = tt.path
			req.URL.RawPath = ""
			req.URL.RawQuery = tt.query
			if tt.ctype != "" {
				req.Header.Set("Content-Type", tt.ctype)
			}
			resp, err := h.agent().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			st := kubeStatus(t, resp)
			if resp.StatusCode != tt.wantStatus || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("got %d %q, want %d containing %q", resp.StatusCode, st.Message, tt.wantStatus, tt.wantMsg)
			}
			if upstreamHits.Load() != 0 || h.creds.calls.Load() != 0 {
				t.Errorf("a denied request reached upstream %d times and asked for %d credentials", upstreamHits.Load(), h.creds.calls.Load())
			}
			if e := lastEvent(t, h.audit); e.Outcome.Status != tt.wantStatus || e.Decision != nil && e.Decision.Allowed {
				t.Errorf("audit outcome %+v decision %+v", e.Outcome, e.Decision)
			}
		})
	}
}

func TestUpstreamTLSIsVerified(t *testing.T) {
	var upstreamHits atomic.Int32
	h := newHarness(t, harnessOptions{untrustedUpstream: true, handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { upstreamHits.Add(1) })})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	st := kubeStatus(t, resp)
	if resp.StatusCode != http.StatusBadGateway || st.Message != "jitproxy: the target could not be reached" {
		t.Errorf("got %d %q; want 502 without internal detail", resp.StatusCode, st.Message)
	}
	// The handshake failed before a byte of the request, and so before the
	// credential, was sent.
	if n := upstreamHits.Load(); n != 0 {
		t.Errorf("the unverified upstream got %d requests", n)
	}
}

func TestCredentialFailureFailsClosed(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	h.creds.err = fmt.Errorf("vault at 10.0.0.5 said: permission denied for token hvs.SECRET")
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	st := kubeStatus(t, resp)
	if resp.StatusCode != http.StatusBadGateway || strings.Contains(st.Message, "hvs.") || strings.Contains(st.Message, "10.0.0.5") {
		t.Errorf("got %d %q", resp.StatusCode, st.Message)
	}
}

func TestSessionEndedInsideTunnel(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	c := h.agent()
	if resp, err := c.Get("https://kubernetes.demo/api/v1/namespaces/demo/pods"); err != nil || resp.StatusCode != 200 {
		t.Fatal(resp, err)
	}
	h.sessions.ended = true
	resp, err := c.Get("https://kubernetes.demo/api/v1/namespaces/demo/pods") // same tunnel, kept alive
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("status = %d, want 401", resp.StatusCode)
	}
	resp.Body.Close()
}

// tunnelTo opens an authenticated CONNECT tunnel and returns a TLS client on it.
func tunnelTo(t *testing.T, h *harness, hostport, serverName string) (*tls.Conn, error) {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.ca.CertPEM)
	return tunnelWith(t, h, hostport, &tls.Config{RootCAs: pool, ServerName: serverName})
}

// tunnelWith opens an authenticated CONNECT tunnel and returns a TLS
// client with cfg on it, its handshake done.
func tunnelWith(t *testing.T, h *harness, hostport string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	c, err := net.Dial("tcp", h.proxyURL.Host)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	p, _ := h.proxyURL.User.Password()
	req := &http.Request{Method: http.MethodConnect, URL: &url.URL{Opaque: hostport}, Host: hostport, Header: http.Header{}}
	req.SetBasicAuth(h.proxyURL.User.Username(), p)
	req.Header["Proxy-Authorization"] = req.Header["Authorization"]
	delete(req.Header, "Authorization")
	req.Write(c)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("CONNECT: %v %v", resp, err)
	}
	tc := tls.Client(c, cfg)
	return tc, tc.Handshake()
}

// TestResumedSessionIsBoundToItsHost: a TLS session of a tunnel to one
// host cannot be resumed in a tunnel to another. A resumed handshake
// presents no certificate, so a check made only when choosing the
// certificate would let it through.
func TestResumedSessionIsBoundToItsHost(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *Config) { c.Targets[0].Hosts = append(c.Targets[0].Hosts, "other.demo") }})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.ca.CertPEM)
	sessions := tls.NewLRUClientSessionCache(8)
	cfg := &tls.Config{RootCAs: pool, ServerName: "other.demo", ClientSessionCache: sessions}
	get := func(tc *tls.Conn, host string) int {
		t.Helper()
		fmt.Fprintf(tc, "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: %s\r\n\r\n", host)
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	tc, err := tunnelWith(t, h, "other.demo:443", cfg)
	if err != nil {
		t.Fatal(err)
	}
	get(tc, "other.demo") // the session ticket comes with the answer
	// The session resumes in a tunnel to the same host...
	tc, err = tunnelWith(t, h, "other.demo:443", cfg)
	if err != nil {
		t.Fatal(err)
	}
	if !tc.ConnectionState().DidResume {
		t.Fatal("the session did not resume in a tunnel to its own host; the test proves nothing")
	}
	// ...and never in one to another.
	if tc, err := tunnelWith(t, h, "kubernetes.demo:443", cfg); err == nil {
		t.Errorf("TLS handshake for server name other.demo in a tunnel to kubernetes.demo succeeded (resumed: %v)", tc.ConnectionState().DidResume)
	}
}

func TestTunnelIsBoundToItsHost(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	if _, err := tunnelTo(t, h, "kubernetes.demo:443", "evil.example"); err == nil {
		t.Error("TLS handshake for another server name succeeded")
	}
	tc, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: other.example\r\n\r\n")
	resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("request for another host in the tunnel: %d, want 421", resp.StatusCode)
	}
}

func TestPanicInOneConnectionIsContained(t *testing.T) {
	h := newHarness(t, harnessOptions{protocol: panicProtocol{kube.New()}})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	for range 2 {
		if _, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods"); err == nil {
			t.Error("a request whose handler panicked got an answer")
		}
	}
	// The process and the proxy still serve.
	status, _ := rawConnect(t, h, "kubernetes.demo:443", false)
	if status != http.StatusProxyAuthRequired {
		t.Errorf("after panics, CONNECT = %d, want 407", status)
	}
	// Each aborted request still left its audit record (the deferred
	// finish), apart from the CONNECT records.
	var aborted int
	for _, e := range h.audit.Events() {
		if e.Type == audit.TypeRequest && e.Action != nil && e.Action.Method == http.MethodGet && e.Action.Path == "/api/v1/namespaces/demo/pods" {
			aborted++
		}
	}
	if aborted != 2 {
		t.Errorf("%d audit records of the aborted requests, want 2", aborted)
	}
}

func TestWatchEndsWhenGrantExpires(t *testing.T) {
	h := newHarness(t, harnessOptions{handler: streamingUpstream()})
	h.sessions.setGrants(podReaderGrant(500 * time.Millisecond))
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods?watch=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	if !sc.Scan() {
		t.Fatal("no first event: the stream was not flushed")
	}
	for sc.Scan() {
	} // returns when the stream ends; the client's 10s timeout would fail the test
	e := lastEvent(t, h.audit)
	if e.Action.Kubernetes.Verb != "watch" || e.Outcome.Error != "grant g-read has expired while the response was streaming" {
		t.Errorf("audit %+v %+v", e.Action, e.Outcome)
	}
}

func TestDiscoveryUsesTheDiscoveryIdentity(t *testing.T) {
	tests := []struct {
		name        string
		noDiscovery bool
		wantStatus  int
	}{
		{name: "with a discovery identity", wantStatus: 200},
		{name: "without one", noDiscovery: true, wantStatus: 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noDiscovery: tt.noDiscovery})
			resp, err := h.agent().Get("https://kubernetes.demo/apis")
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("GET /apis without a grant = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.noDiscovery {
				return
			}
			h.creds.mu.Lock()
			last := h.creds.last
			h.creds.mu.Unlock()
			if last.GrantID != "discovery" || last.Options["serviceAccount"] != "default" {
				t.Errorf("credential asked for %+v, want the discovery identity", last)
			}
			if e := lastEvent(t, h.audit); e.Grant != nil || e.Decision.Reasons[0] != "discovery documents need no grant" {
				t.Errorf("audit grant %+v decision %+v", e.Grant, e.Decision)
			}
		})
	}
}

// TestNoAuditNoCredential: when the decision cannot be recorded (an
// enforced audit sink whose spool is full or unwritable), the request is
// refused with 503 in the target's format, before anything is minted or
// forwarded.
func TestNoAuditNoCredential(t *testing.T) {
	var upstream atomic.Int32
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { upstream.Add(1) })})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	h.audit.FailWith(fmt.Errorf("%w: the audit spool is full", audit.ErrNotRecorded))
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "the audit log cannot record this request right now; it was not forwarded") || !strings.Contains(string(body), `"kind":"Status"`) {
		t.Errorf("response = %d %s", resp.StatusCode, body)
	}
	if n := h.creds.calls.Load(); n != 0 {
		t.Errorf("%d credentials minted", n)
	}
	if n := upstream.Load(); n != 0 {
		t.Errorf("the upstream got %d requests", n)
	}
}

// TestLockedSessionIsDenied: a session an admin's lock holds is answered
// 403 with the lock's reason, before anything is decided or forwarded.
func TestLockedSessionIsDenied(t *testing.T) {
	var upstream atomic.Int32
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { upstream.Add(1) })})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	h.sessions.mu.Lock()
	h.sessions.lock = &jit.Lock{ID: "l-1", User: "alice", Reason: "incident 7"}
	h.sessions.mu.Unlock()
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	st := kubeStatus(t, resp)
	if resp.StatusCode != http.StatusForbidden || st.Message != "jitproxy: user alice is locked by an administrator (lock l-1): incident 7" {
		t.Errorf("%d %q", resp.StatusCode, st.Message)
	}
	if n, m := upstream.Load(), h.creds.calls.Load(); n != 0 || m != 0 {
		t.Errorf("the upstream was reached %d times, the broker asked %d times", n, m)
	}
}

// TestDenialNamesAPendingRequest: a denial whose caller already asked for
// a grant that would allow it says what the request waits for, not to
// ask again.
func TestDenialNamesAPendingRequest(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.sessions.policies = []*jit.Policy{{
		Name: "pod-reader", Target: "demo", Namespaces: []string{"demo"},
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
	}}
	until := time.Date(2026, 11, 29, 10, 42, 0, 0, time.UTC)
	h.sessions.pending = []*jit.Grant{{ID: "g-wait", Policy: "pod-reader", State: jit.StatePending, RequiredApprovals: 1,
		Approvers: jit.Subjects{Groups: []string{"sre"}}, PendingUntil: until}}
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	st := kubeStatus(t, resp)
	want := `jitproxy denied list pods in namespace "demo": no active grant permits this request. Your request that would allow it is pending: grant g-wait (pod-reader) is waiting for 1 approval from sre until 10:42:00Z.`
	if resp.StatusCode != http.StatusForbidden || st.Message != want {
		t.Errorf("%d %q\nwant %q", resp.StatusCode, st.Message, want)
	}
}

// TestSuspendedGrantsInTheDenial: grants jit holds back (suspended by
// defensive denial) are named in the denial, with those a condition
// holds back, and their reasons are not mixed up across requests.
func TestSuspendedGrantsInTheDenial(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	g := podReaderGrant(time.Hour)
	g.Conditions = &jit.Conditions{SourceNetworks: []string{"10.0.0.0/8"}}
	h.sessions.setGrants(g)
	h.sessions.held = []string{`grant g-old (pod-reader) is suspended: access policy "pod-reader" was removed`}
	for range 2 {
		resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
		if err != nil {
			t.Fatal(err)
		}
		st := kubeStatus(t, resp)
		want := `Not in force: grant g-old (pod-reader) is suspended: access policy "pod-reader" was removed; grant g-read (pod-reader) is usable only from 10.0.0.0/8.`
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(st.Message, want) {
			t.Errorf("%d %q\nwant it to contain %q", resp.StatusCode, st.Message, want)
		}
	}
	if got := h.sessions.held; len(got) != 1 {
		t.Errorf("the session's held list was changed: %q", got)
	}
}

// TestGrantConditionsAtUse: a grant whose policy's conditions do not hold
// for this use (outside its window, from another network, another auth
// method) is not in force for the request, and the denial says why.
func TestGrantConditionsAtUse(t *testing.T) {
	now := time.Now().UTC()
	other := weekdays(now.Add(48 * time.Hour))
	tests := []struct {
		name    string
		c       *jit.Conditions
		wantMsg string
	}{
		{name: "none"},
		// Today and tomorrow: the request may cross midnight.
		{name: "in its window", c: &jit.Conditions{Windows: []jit.Window{{Days: []string{weekdays(now), weekdays(now.Add(24 * time.Hour))}}}}},
		{name: "outside its window", c: &jit.Conditions{Windows: []jit.Window{{Days: []string{other}}}},
			wantMsg: "Not in force: grant g-read (pod-reader) is usable only " + other + " all day UTC."},
		{name: "from its network", c: &jit.Conditions{SourceNetworks: []string{"127.0.0.0/8"}}},
		{name: "from another network", c: &jit.Conditions{SourceNetworks: []string{"10.0.0.0/8"}},
			wantMsg: "grant g-read (pod-reader) is usable only from 10.0.0.0/8"},
		{name: "another auth method", c: &jit.Conditions{AuthMethods: []string{"oidc"}},
			wantMsg: "grant g-read (pod-reader) is usable only by sessions that authenticated with oidc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			g := podReaderGrant(time.Hour)
			g.Conditions = tt.c
			h.sessions.setGrants(g)
			resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
			if err != nil {
				t.Fatal(err)
			}
			if tt.wantMsg == "" {
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					t.Errorf("status %d, want 200", resp.StatusCode)
				}
				return
			}
			st := kubeStatus(t, resp)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(st.Message, tt.wantMsg) {
				t.Errorf("%d %q\nwant it to contain %q", resp.StatusCode, st.Message, tt.wantMsg)
			}
		})
	}
}

func weekdays(t time.Time) string {
	return []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}[t.Weekday()]
}
