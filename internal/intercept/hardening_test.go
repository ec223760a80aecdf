package intercept

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// forwardedToKube is every request header that may reach kube-apiserver,
// spelled out: a header added to the protocol's allow-list must be added
// here too, deliberately.
var forwardedToKube = []string{
	"Accept", "Accept-Encoding", "Connection", "Content-Type", "If-Modified-Since", "If-None-Match",
	"Kubectl-Command", "Kubectl-Session", "Sec-Websocket-Extensions", "Sec-Websocket-Key",
	"Sec-Websocket-Protocol", "Sec-Websocket-Version", "Te", "Traceparent", "Tracestate",
	"Upgrade", "User-Agent", "X-Stream-Protocol-Version",
}

func TestOnlyAllowedHeadersReachTheUpstream(t *testing.T) {
	got := kube.ForwardedHeaders()
	slices.Sort(got)
	if diff := cmp.Diff(forwardedToKube, got); diff != "" {
		t.Fatalf("the Kubernetes allow-list changed (-tested +now):\n%s", diff)
	}
	var mu sync.Mutex
	var seen http.Header
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = r.Header.Clone()
		mu.Unlock()
		w.Write([]byte(`{"kind":"PodList"}`))
	})})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	sent := http.Header{
		// What the protocol needs.
		"Accept": {"application/json"}, "Accept-Encoding": {"gzip"}, "User-Agent": {"kubectl/v1.32"},
		"Kubectl-Command": {"kubectl get"}, "Kubectl-Session": {"abc"}, "If-None-Match": {`"etag"`},
		"If-Modified-Since": {"Mon, 02 Jan 2006 15:04:05 GMT"}, "Traceparent": {"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
		"Tracestate": {"a=b"},
		// Credentials and identities some upstream or other trusts.
		"Authorization": {"Bearer agent-token"}, "Cookie": {"s=1"}, "Proxy-Authorization": {"Basic eA=="},
		"Impersonate-User": {"admin"}, "Impersonate-Group": {"system:masters"}, "Impersonate-Uid": {"0"},
		"Impersonate-Extra-Scopes": {"x"}, "X-Remote-User": {"admin"}, "X-Remote-Group": {"system:masters"},
		"X-Remote-Extra-Scopes": {"x"}, "X-Forwarded-User": {"admin"}, "X-Forwarded-Email": {"a@b"},
		"X-Forwarded-Access-Token": {"tok"}, "X-Forwarded-Groups": {"system:masters"}, "X-Forwarded-For": {"10.0.0.1"},
		"X-Forwarded-Host": {"kubernetes.default"}, "X-Auth-Request-User": {"admin"},
		"X-Auth-Request-Access-Token": {"tok"}, "X-Auth-Request-Groups": {"system:masters"}, "X-Real-Ip": {"10.0.0.1"},
		"Forwarded": {"for=10.0.0.1"}, "X-Amz-Security-Token": {"tok"}, "X-Api-Key": {"k"},
		// And a header nobody has thought of.
		"X-Something-New": {"x"},
	}
	req, _ := http.NewRequest("GET", "https://kubernetes.demo/api/v1/namespaces/demo/pods", nil)
	req.Header = sent.Clone()
	resp, err := h.agent().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	mu.Lock()
	defer mu.Unlock()
	var arrived []string
	for k := range seen {
		arrived = append(arrived, k)
		if k != "Authorization" && !slices.Contains(forwardedToKube, k) {
			t.Errorf("header %s reached the upstream: %q", k, seen[k])
		}
	}
	slices.Sort(arrived)
	want := []string{"Accept", "Accept-Encoding", "Authorization", "If-Modified-Since", "If-None-Match",
		"Kubectl-Command", "Kubectl-Session", "Traceparent", "Tracestate", "User-Agent"}
	if diff := cmp.Diff(want, arrived); diff != "" {
		t.Errorf("headers at the upstream (-want +got):\n%s", diff)
	}
	if got := seen.Get("Authorization"); got != "Bearer "+mintedToken {
		t.Errorf("Authorization %q, want the minted token", got)
	}
}

// objectPolicy judges the stored object: no pod template may share the
// node's PID namespace; with old it also reads input.old_object.
func objectPolicy(old bool) fstest.MapFS {
	src := `package jitproxy.authz

permit contains grant.id if {
	some grant in input.grants
	some permission in grant.permissions
	input.action.kubernetes.verb in permission.kubernetes.verbs
}

forbid contains "hostPID" if input.object.spec.template.spec.hostPID == true
`
	if old {
		src += `
forbid contains "scaling down from more than 5" if input.old_object.spec.replicas > 5
`
	}
	return fstest.MapFS{"object.rego": {Data: []byte(src)}}
}

func editorGrant() *jit.Grant {
	g := podReaderGrant(time.Hour)
	g.ID, g.Policy = "g-edit", "editor"
	g.Permissions = []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "patch", "update", "create"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}}}}
	return g
}

// fakeKube stands in for kube-apiserver's object endpoints: it stores one
// Deployment, answers dry runs with what a merge of the body's spec would
// store, and records every request.
type fakeKube struct {
	mu       sync.Mutex
	replicas int
	requests []string // "METHOD path?query body" with the credential's check
	dryRun   int      // status of dry runs; 0: 200
}

func (f *fakeKube) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	auth := "minted"
	if r.Header.Get("Authorization") != "Bearer "+mintedToken {
		auth = "NOT MINTED"
	}
	f.requests = append(f.requests, fmt.Sprintf("%s %s %s %s", auth, r.Method, r.URL.RequestURI(), body))
	obj := map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"name": "web", "namespace": "demo", "resourceVersion": "42"},
		"spec":     map[string]any{"replicas": f.replicas, "template": map[string]any{"spec": map[string]any{"hostPID": strings.Contains(string(body), "hostPID")}}},
	}
	w.Header().Set("Content-Type", "application/json")
	if r.URL.Query().Get("dryRun") == "All" && f.dryRun != 0 {
		w.WriteHeader(f.dryRun)
		json.NewEncoder(w).Encode(map[string]any{"kind": "Status", "code": f.dryRun, "message": "the upstream's own refusal"})
		return
	}
	json.NewEncoder(w).Encode(obj)
}

func (f *fakeKube) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

func TestAdmissionJudgesTheStoredObject(t *testing.T) {
	const deploy = "/apis/apps/v1/namespaces/demo/deployments/web"
	tests := []struct {
		name       string
		old        bool // the policy reads input.old_object
		replicas   int
		dryRun     int
		grant      *jit.Grant
		method     string
		query      string
		ctype      string
		body       string
		wantStatus int
		wantMsg    string
		wantSeen   []string
	}{
		{
			name: "a JSON patch that sets hostPID is refused after the dry run", method: "PATCH", ctype: "application/json-patch+json",
			body: `[{"op":"add","path":"/spec/template/spec/hostPID","value":true}]`, wantStatus: 403, wantMsg: "hostPID",
			wantSeen: []string{`minted PATCH ` + deploy + `?dryRun=All [{"op":"add","path":"/spec/template/spec/hostPID","value":true}]`},
		},
		{
			name: "a benign JSON patch is forwarded, conditional on the object judged", method: "PATCH", ctype: "application/json-patch+json",
			body: `[{"op":"replace","path":"/spec/replicas","value":2}]`, wantStatus: 200,
			wantSeen: []string{
				`minted PATCH ` + deploy + `?dryRun=All [{"op":"replace","path":"/spec/replicas","value":2}]`,
				`minted PATCH ` + deploy + ` [{"op":"replace","path":"/spec/replicas","value":2},{"op":"add","path":"/metadata/resourceVersion","value":"42"}]`,
			},
		},
		{
			name: "a merge patch that sets hostPID is refused", method: "PATCH", ctype: "application/merge-patch+json",
			body: `{"spec":{"template":{"spec":{"hostPID":true}}}}`, wantStatus: 403, wantMsg: "hostPID",
			wantSeen: []string{`minted PATCH ` + deploy + `?dryRun=All {"spec":{"template":{"spec":{"hostPID":true}}}}`},
		},
		{
			name: "the client's own dry run is answered by jitproxy's", method: "PATCH", query: "?dryRun=All", ctype: "application/merge-patch+json",
			body: `{"spec":{"replicas":1}}`, wantStatus: 200,
			wantSeen: []string{`minted PATCH ` + deploy + `?dryRun=All {"spec":{"replicas":1}}`},
		},
		{
			name: "a dry run the upstream refuses is its answer", dryRun: 422, method: "PATCH", ctype: "application/merge-patch+json",
			body: `{"spec":{"replicas":"x"}}`, wantStatus: 422, wantMsg: "the upstream's own refusal",
			wantSeen: []string{`minted PATCH ` + deploy + `?dryRun=All {"spec":{"replicas":"x"}}`},
		},
		{
			name: "the stored object is read when policies use it", old: true, replicas: 9, method: "PATCH", ctype: "application/merge-patch+json",
			body: `{"spec":{"replicas":1}}`, wantStatus: 403, wantMsg: "scaling down from more than 5",
			wantSeen: []string{`minted GET ` + deploy + ` `, `minted PATCH ` + deploy + `?dryRun=All {"spec":{"replicas":1}}`},
		},
		{
			name: "a request no grant allows reaches nothing, not even a dry run", grant: podReaderGrant(time.Hour), method: "PATCH",
			ctype: "application/merge-patch+json", body: `{}`, wantStatus: 403, wantMsg: "no active grant",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up := &fakeKube{replicas: tt.replicas, dryRun: tt.dryRun}
			h := newHarness(t, harnessOptions{handler: up, policies: objectPolicy(tt.old)})
			g := tt.grant
			if g == nil {
				g = editorGrant()
			}
			h.sessions.setGrants(g)
			req, _ := http.NewRequest(tt.method, "https://kubernetes.demo"+deploy+tt.query, strings.NewReader(tt.body))
			req.Header.Set("Content-Type", tt.ctype)
			resp, err := h.agent().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus || !strings.Contains(string(b), tt.wantMsg) {
				t.Errorf("got %d %s, want %d containing %q", resp.StatusCode, b, tt.wantStatus, tt.wantMsg)
			}
			if diff := cmp.Diff(tt.wantSeen, up.seen()); diff != "" {
				t.Errorf("requests at the upstream (-want +got):\n%s", diff)
			}
			if e := lastEvent(t, h.audit); e.Outcome.Status != tt.wantStatus {
				t.Errorf("audit outcome %+v, want status %d", e.Outcome, tt.wantStatus)
			}
		})
	}
}

// streamingUpstream serves a watch that streams until the client goes, and
// an upgrade that echoes what it is sent.
func streamingUpstream() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Upgrade") != "" {
			c, brw, err := http.NewResponseController(w).Hijack()
			if err != nil {
				return
			}
			defer c.Close()
			io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
			io.Copy(c, brw)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		for {
			if _, err := io.WriteString(w, `{"type":"ADDED"}`+"\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	})
}

func TestRevocationEndsOpenStreams(t *testing.T) {
	tests := []struct {
		name string
		// open starts a stream and returns a function that blocks until it ends.
		open func(t *testing.T, h *harness) func()
	}{
		{name: "watch", open: func(t *testing.T, h *harness) func() {
			resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods?watch=1")
			if err != nil {
				t.Fatal(err)
			}
			sc := bufio.NewScanner(resp.Body)
			if !sc.Scan() {
				t.Fatal("no first event")
			}
			return func() {
				for sc.Scan() {
				}
				resp.Body.Close()
			}
		}},
		{name: "upgraded stream (exec, port-forward)", open: openUpgradedStream},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{handler: streamingUpstream()})
			g := podReaderGrant(time.Hour)
			g.Permissions = append(g.Permissions, access.Permission{Kubernetes: &access.KubernetesPermission{Verbs: []string{"create", "get"}, APIGroups: []string{""}, Resources: []string{"pods/exec"}}})
			h.sessions.setGrants(g)
			wait := tt.open(t, h)
			h.sessions.mu.Lock()
			watched := slices.Clone(h.sessions.watched)
			h.sessions.mu.Unlock()
			if !slices.Contains(watched, "g-read") {
				t.Errorf("the stream's grant was not watched: %v", watched)
			}
			ended := make(chan time.Duration, 1)
			revoked := time.Now()
			go func() { wait(); ended <- time.Since(revoked) }()
			h.sessions.revoke()
			select {
			case d := <-ended:
				t.Logf("the stream ended %s after the revocation", d)
			case <-time.After(time.Second):
				t.Fatal("the stream is still open a second after its grant was revoked")
			}
			waitFor(t, "the stream's audit record", func() bool {
				e := lastEvent(t, h.audit)
				return e.Outcome != nil && strings.Contains(e.Outcome.Error, "grant g-read or your session has ended")
			})
		})
	}
}

// openUpgradedStream opens an exec stream through h, checks that it echoes,
// and returns a function that blocks until the stream ends (or 10s pass).
func openUpgradedStream(t *testing.T, h *harness) func() {
	tc, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo")
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(tc, "GET /api/v1/namespaces/demo/pods/web/exec?command=sh HTTP/1.1\r\nHost: kubernetes.demo\r\n"+
		"Connection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Protocol: v5.channel.k8s.io\r\n\r\n")
	br := bufio.NewReader(tc)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	io.WriteString(tc, "ping\n")
	if line, err := br.ReadString('\n'); err != nil || line != "ping\n" {
		t.Fatalf("echo: %q %v", line, err)
	}
	return func() {
		tc.SetReadDeadline(time.Now().Add(10 * time.Second))
		io.Copy(io.Discard, br)
	}
}

// TestUpgradedStreamEndsWhenGrantExpires: an upgraded stream is cut off on
// the agent's side when its grant expires, as when it is revoked.
func TestUpgradedStreamEndsWhenGrantExpires(t *testing.T) {
	h := newHarness(t, harnessOptions{handler: streamingUpstream()})
	g := podReaderGrant(700 * time.Millisecond)
	g.Permissions = append(g.Permissions, access.Permission{Kubernetes: &access.KubernetesPermission{Verbs: []string{"create", "get"}, APIGroups: []string{""}, Resources: []string{"pods/exec"}}})
	h.sessions.setGrants(g)
	wait := openUpgradedStream(t, h)
	ended := make(chan struct{})
	go func() { wait(); close(ended) }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the stream is still open 5s after its grant expired")
	}
	waitFor(t, "the stream's audit record", func() bool {
		e := lastEvent(t, h.audit)
		return e.Outcome != nil && strings.Contains(e.Outcome.Error, "grant g-read has expired")
	})
}

// TestGrantEndedBeforeForwarding: a grant that ends after the request was
// decided but before it is forwarded ends it all the same: it never
// reaches the upstream.
func TestGrantEndedBeforeForwarding(t *testing.T) {
	var reached atomic.Int32
	h := newHarness(t, harnessOptions{handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { reached.Add(1) })})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	h.sessions.mu.Lock()
	h.sessions.endAtOnce = true // the watch ends as soon as it begins
	h.sessions.mu.Unlock()
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "grant g-read or your session has ended") {
		t.Errorf("response = %d %s", resp.StatusCode, body)
	}
	if n := reached.Load(); n != 0 {
		t.Errorf("the upstream was reached %d times", n)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHostileClientsAreCutOff(t *testing.T) {
	short := func(c *Config) {
		c.IdleTimeout, c.BodyTimeout, c.ReadHeaderTimeout = 300*time.Millisecond, 300*time.Millisecond, 300*time.Millisecond
	}
	t.Run("an idle tunnel is closed", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: short})
		h.sessions.setGrants(podReaderGrant(time.Hour))
		tc, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(tc, "GET /api/v1/namespaces/demo/pods HTTP/1.1\r\nHost: kubernetes.demo\r\n\r\n")
		br := bufio.NewReader(tc)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("first request: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("idle tunnel: read %v, want EOF once the idle timeout passed", err)
		}
	})
	t.Run("a body that does not arrive is answered 408", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: short})
		h.sessions.setGrants(editorGrant())
		tc, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo")
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(tc, "POST /apis/apps/v1/namespaces/demo/deployments HTTP/1.1\r\nHost: kubernetes.demo\r\n"+
			"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"kind\":")
		tc.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != http.StatusRequestTimeout {
			t.Errorf("slow body: %d, want 408", resp.StatusCode)
		}
	})
	t.Run("headers that do not arrive close the connection", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: short})
		c, err := net.Dial("tcp", h.proxyURL.Host)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "CONNECT kubernetes.demo:443 HTTP/1.1\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil {
			t.Errorf("slow CONNECT: %v, want the connection closed", err)
		}
		if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 4") {
			t.Errorf("slow CONNECT answered %q", b)
		}
	})
	t.Run("a session holds at most the configured number of tunnels", func(t *testing.T) {
		h := newHarness(t, harnessOptions{config: func(c *Config) { c.MaxTunnelsPerSession = 2 }})
		first, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tunnelTo(t, h, "kubernetes.demo:443", "kubernetes.demo"); err != nil {
			t.Fatal(err)
		}
		status, body := rawConnect(t, h, "kubernetes.demo:443", true)
		if status != http.StatusTooManyRequests || !strings.Contains(body, "2 tunnels open") {
			t.Errorf("third tunnel: %d %q, want 429", status, body)
		}
		first.Close()
		waitFor(t, "a place to free up", func() bool {
			status, _ := rawConnect(t, h, "kubernetes.demo:443", true)
			return status == http.StatusOK
		})
	})
}

// TestDeniedExpectContinueAnswersAtOnce: a client that sends
// "Expect: 100-continue" (the aws CLI's PutObject) waits for the server
// before it sends its body. A request jitproxy refuses without reading
// the body must be answered without waiting for that body, which never
// comes (before the fix: only after proxy.timeouts.body).
func TestDeniedExpectContinueAnswersAtOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *Config) { c.BodyTimeout = time.Hour }})
	tr := h.agent().Transport.(*http.Transport)
	tr.ExpectContinueTimeout = time.Hour
	for _, tt := range []struct {
		name   string
		grants []*jit.Grant
		want   int
	}{
		{"denied", nil, http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h.sessions.setGrants(tt.grants...)
			// The deadline only keeps a regression from hanging the suite.
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			// A delete's body (DeleteOptions) is forwarded, not inspected.
			req, _ := http.NewRequestWithContext(ctx, "DELETE", "https://kubernetes.demo/api/v1/namespaces/demo/pods/web", strings.NewReader(`{"kind":"DeleteOptions","apiVersion":"v1"}`))
			req.Header.Set("Expect", "100-continue")
			req.Header.Set("Content-Type", "application/json")
			resp, err := (&http.Client{Transport: tr}).Do(req)
			if err != nil {
				t.Fatalf("the refused request got no answer: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}
