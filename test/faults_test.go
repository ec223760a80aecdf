package test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestFailingDependencies takes jitproxy's dependencies away one at a time,
// on the real servers, with the real jitproxy binary and kubectl: Redis
// killed, Vault stopped, kube-apiserver stopped, an upstream whose
// certificate does not match its ca_file, and a policy that does not
// compile. Each shows that nothing is forwarded without a complete check,
// that the agent gets a clear answer in the target's format, and that
// jitproxy recovers, without a restart of its own, when the dependency
// comes back. One environment serves every subtest; each leaves it whole.
func TestFailingDependencies(t *testing.T) {
	c := startRealCluster(t, servers.Options{DurableRedis: true, Vault: true})
	ctx := context.Background()

	// The second target, wrongca, is reached at a TLS server whose
	// certificate comes from a CA of its own, while its ca_file is the
	// cluster's: jitproxy must refuse it. jitproxy's own identity there (for
	// TokenRequest) is on the real cluster, so that credentials are minted.
	impostor := newTLSRecorder(t)
	ownKubeconfig := filepath.Join(c.dir, "jitproxy-own.kubeconfig")
	writeFile(t, ownKubeconfig, fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: real
  cluster: {server: %q, certificate-authority: %q}
users:
- name: jitproxy
  user: {tokenFile: %q}
contexts:
- name: real
  context: {cluster: real, user: jitproxy}
current-context: real
`, c.env.Kube.URL, c.env.Kube.CAFile, c.env.Kube.JitproxyTokenFile))
	cfg, state := c.config(t, freeAddr(t), freeAddr(t), fmt.Sprintf(`  - name: wrongca
    kind: kubernetes
    hosts: [wrongca.demo]
    upstream: %s
    ca_file: %s
    credentials: {kubeconfig: %s}
`, impostor.URL, c.env.Kube.CAFile, ownKubeconfig))
	writeFile(t, filepath.Join(c.dir, "access", "wrongca-reader.yaml"), `apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: wrongca-reader
spec:
  description: Read pods on the target behind the wrong certificate.
  target: wrongca
  subjects:
    groups: [developers]
  namespaces: [demo]
  permissions:
    - verbs: [get, list, watch]
      apiGroups: [""]
      resources: [pods]
  duration:
    default: 15m
    max: 1h
  approval:
    required: 0
  credential:
    provider: tokenrequest
    options:
      serviceAccount: jitproxy-pod-reader
`)
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)
	kubeconfig := filepath.Join(c.dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "e2e-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	// Every request the agent sends carries a canary as its own token: it
	// must show up nowhere, whatever fails.
	const agentCanary = "agent-canary-faults-7c41e2"
	kc, err := os.ReadFile(kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(kc), "jitproxy-injects-the-credential") {
		t.Fatalf("no placeholder token in the session's kubeconfig:\n%s", kc)
	}
	writeFile(t, kubeconfig, strings.ReplaceAll(string(kc), "jitproxy-injects-the-credential", agentCanary))
	ag := &agent{t: t, kubectl: c.kubectl, kubeconfig: kubeconfig, home: filepath.Join(c.dir, "home"), out: out}
	request := func(t *testing.T, args ...string) string {
		t.Helper()
		id := grantID(t, p.mustCLI(append([]string{"grant", "request"}, args...)...))
		t.Cleanup(func() { p.cli("grant", "revoke", id, "--as", "root", "--reason", "test cleanup") })
		return id
	}
	// minted collects, as canaries, the credentials jitproxy cached in Redis.
	var minted []string
	collectMinted := func(t *testing.T) {
		t.Helper()
		keys, err := c.rdb.Keys(ctx, "jitproxy:cred:*").Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			var e struct{ Token string }
			if raw, err := c.rdb.Get(ctx, k).Bytes(); err == nil && json.Unmarshal(raw, &e) == nil && e.Token != "" {
				minted = append(minted, e.Token)
			}
		}
	}
	// Warm kubectl's discovery cache for kubernetes.demo, so that kubectl
	// below asks for discovery only where a subtest gives it no cache.
	id := request(t, "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "warm up")
	ag.mustRun("get", "pods", "-n", "demo")
	collectMinted(t)
	p.mustCLI("grant", "revoke", id, "--as", "dev")

	t.Run("a policy that does not compile stops the start", func(t *testing.T) {
		shipped, err := os.ReadFile(filepath.Join(c.root, "policies", "authz", "kubernetes.rego"))
		if err != nil {
			t.Fatal(err)
		}
		for _, tt := range []struct{ name, bad, want string }{
			{
				name: "syntax error",
				bad:  "package jitproxy.authz\n\nforbid contains reason if reason := \"never\" ]\n",
				want: "bad.rego:3",
			},
			{
				name: "undefined function",
				bad:  "package jitproxy.authz\n\nforbid contains reason if reason := jitproxy.no_such_check(input)\n",
				want: "bad.rego:3",
			},
		} {
			t.Run(tt.name, func(t *testing.T) {
				dir := t.TempDir()
				writeFile(t, filepath.Join(dir, "authz", "kubernetes.rego"), string(shipped))
				writeFile(t, filepath.Join(dir, "authz", "bad.rego"), tt.bad)
				writeFile(t, filepath.Join(dir, "jitproxy.yaml"), "state_dir: state\nproxy: {listen: \"127.0.0.1:0\"}\nadmin: {listen: \"127.0.0.1:0\"}\npolicies: {authz_dir: authz}\n")
				cctx, cancel := context.WithTimeout(ctx, time.Minute)
				defer cancel()
				cmd := exec.CommandContext(cctx, jitproxyBin, "serve", "--config", filepath.Join(dir, "jitproxy.yaml"))
				got, err := cmd.CombinedOutput()
				t.Logf("jitproxy serve: %v\n%s", err, got)
				if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() <= 0 {
					t.Fatalf("jitproxy serve with %s: %v, want a non-zero exit", tt.name, err)
				}
				if !strings.Contains(string(got), tt.want) || strings.Contains(string(got), "jitproxy ready") {
					t.Errorf("jitproxy serve output does not name %s, or says it is ready:\n%s", tt.want, got)
				}
			})
		}
	})

	t.Run("an upstream certificate that does not match ca_file", func(t *testing.T) {
		ag.t = t
		defer func() { ag.t = nil }()
		id := request(t, "wrongca-reader", "--as", "dev", "--namespace", "demo", "--reason", "look behind the wrong certificate")
		got := ag.mustFail("Error from server (ServiceUnavailable): jitproxy: the target could not be reached",
			"--context", "wrongca", "get", "--raw", "/api/v1/namespaces/demo/pods")
		noInternals(t, got, impostor.Listener.Addr().String())
		// kubectl get, whose discovery (no cache for this host) fails first:
		// kubectl shows no server message for a failed discovery request.
		got = ag.mustFail("Error from server", "--context", "wrongca", "get", "pods", "-n", "demo")
		t.Logf("kubectl get pods, discovery not cached:\n%s", got)
		noInternals(t, got, impostor.Listener.Addr().String())
		// The credential was minted (so there was something to inject) ...
		raw, err := c.rdb.Get(ctx, "jitproxy:cred:"+id+":wrongca").Bytes()
		if err != nil {
			t.Fatalf("no credential minted for the wrongca grant: %v", err)
		}
		var e struct{ Token string }
		json.Unmarshal(raw, &e)
		minted = append(minted, e.Token)
		collectMinted(t)
		// ... and none reached the impostor: no handshake completed, no request.
		conns, reqs := impostor.counts()
		t.Logf("the impostor saw %d connections and %d requests", conns, reqs)
		if conns == 0 {
			t.Errorf("jitproxy never tried the impostor: the test shows nothing")
		}
		if reqs != 0 {
			t.Errorf("the impostor received %d requests; with a bearer token: %v", reqs, impostor.withBearer())
		}
		if !strings.Contains(p.stderr.String(), "x509: certificate signed by unknown authority") {
			t.Errorf("the log does not give the reason")
		}
		if n := refusals(t, p, 502, "the target could not be reached"); n < 2 {
			t.Errorf("%d audited refusals, want one per request", n)
		}
		p.mustCLI("grant", "revoke", id, "--as", "dev")
	})

	t.Run("Vault stopped", func(t *testing.T) {
		ag.t = t
		defer func() { ag.t = nil }()
		// cached: minted before Vault stops; never: requested, never used.
		cached := request(t, "pod-reader-vault", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "minted before")
		ag.mustRun("get", "pods", "-n", "demo")
		_, cachedSubject := c.mintedToken(t, cached)
		never := request(t, "pod-reader-vault", "--as", "dev", "--namespace", "staging", "--duration", "30m", "--reason", "never minted")

		c.env.Vault.Stop()
		if got := ag.mustRun("get", "pods", "-n", "demo"); !strings.Contains(got, "web") {
			t.Errorf("the cached credential, with Vault stopped:\n%s", got)
		}
		start := time.Now()
		got := ag.mustFail(fmt.Sprintf("jitproxy: could not obtain a credential for grant %s; the request was not forwarded", never), "get", "pods", "-n", "staging")
		t.Logf("kubectl, a grant never minted, Vault stopped (%s):\n%s", time.Since(start).Round(time.Millisecond), got)
		noInternals(t, got, c.env.Vault.Addr)
		if n := refusals(t, p, 502, "could not obtain a credential for grant "+never); n != 1 {
			t.Errorf("%d audited refusals for the grant never minted, want 1", n)
		}

		// The cached credential serves until its grant ends.
		p.mustCLI("grant", "revoke", cached, "--as", "dev", "--reason", "done")
		ag.mustFail("no active grant permits this request", "get", "pods", "-n", "demo")

		if err := c.env.Vault.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.env.SetupVault(ctx, c.root, c.kubectl); err != nil {
			t.Fatal(err)
		}
		// The first request after the restart mints: jitproxy's Vault token
		// died with the old Vault, and it logs in again.
		if got := ag.mustRun("get", "pods", "-n", "staging"); !strings.Contains(got, "No resources found") && !strings.Contains(got, "NAME") {
			t.Errorf("kubectl get pods -n staging after Vault's restart:\n%s", got)
		}
		_, subject := c.mintedToken(t, never)
		p.mustCLI("grant", "revoke", never, "--as", "dev")
		waitUntil(t, "the restarted Vault to delete what it made", 20*time.Second, func() bool { return len(c.vaultObjects(t, subject)) == 0 })
		// What the stopped Vault made for the cached grant stays: the dev
		// server forgot its lease (a Vault with storage revokes it at the
		// lease's end).
		t.Logf("left behind by the Vault that was stopped: %v", c.vaultObjects(t, cachedSubject))
	})

	t.Run("redis-server killed", func(t *testing.T) {
		ag.t = t
		defer func() { ag.t = nil }()
		id := request(t, "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "across a Redis crash")
		ag.mustRun("get", "pods", "-n", "demo")
		collectMinted(t)
		// A client that keeps its tunnel open, as a long-running agent does.
		rc, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		rc.Timeout = 20 * time.Second
		open, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := open.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{}); err != nil {
			t.Fatal(err)
		}

		logBefore := strings.Count(p.stderr.String(), "\n")
		c.env.Redis.Kill()
		killed := time.Now()
		var listErr error
		waitUntil(t, "the open tunnel to be refused", 10*time.Second, func() bool {
			_, listErr = open.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{})
			return listErr != nil
		})
		if !apierrors.IsServiceUnavailable(listErr) || !strings.Contains(listErr.Error(), "jitproxy: cannot load your grants right now; the request was not forwarded") {
			t.Errorf("a request in an open tunnel, Redis down: %v, want 503 ServiceUnavailable from jitproxy", listErr)
		}
		t.Logf("open tunnel, Redis down: %v", listErr)
		start := time.Now()
		got := ag.mustFail("Unable to connect to the server: jitproxy: cannot check your session right now; try again", "get", "pods", "-n", "demo")
		t.Logf("kubectl, a new tunnel, Redis down (%s):\n%s", time.Since(start).Round(time.Millisecond), got)
		noInternals(t, got, c.env.Redis.Addr)
		if refusals(t, p, 503, "cannot load your grants right now") == 0 || refusals(t, p, 503, "session store unavailable") == 0 {
			t.Errorf("the refusals with Redis down are not audited")
		}
		if got, err := p.cli("grant", "request", "pod-reader", "--as", "dev", "--namespace", "staging", "--reason", "r"); err == nil {
			t.Errorf("grant request with Redis down succeeded:\n%s", got)
		} else {
			t.Logf("jitproxy grant request, Redis down: %s", got)
		}

		if err := c.env.Redis.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		waitUntil(t, "kubectl to work again", 30*time.Second, func() bool {
			_, err := ag.run("get", "pods", "-n", "demo")
			return err == nil
		})
		t.Logf("Redis down for %s; kubectl worked again %s after redis-server was back; %d log lines meanwhile",
			restarted.Sub(killed).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond), strings.Count(p.stderr.String(), "\n")-logBefore)
		if _, err := open.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{}); err != nil {
			t.Errorf("the open tunnel after Redis came back: %v", err)
		}
		if got := p.mustCLI("grant", "show", id, "--as", "dev"); !strings.Contains(got, "ACTIVE") {
			t.Errorf("the grant after Redis came back: %s", got)
		}
		// A change made after the restart still reaches the data plane.
		p.mustCLI("grant", "revoke", id, "--as", "dev")
		ag.mustFail("no active grant permits this request", "get", "pods", "-n", "demo")
	})

	t.Run("kube-apiserver stopped", func(t *testing.T) {
		ag.t = t
		defer func() { ag.t = nil }()
		id := request(t, "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "across an apiserver outage")
		ag.mustRun("get", "pods", "-n", "demo")
		collectMinted(t)

		addr := strings.TrimPrefix(c.env.Kube.URL, "https://")
		c.env.Kube.Stop()
		stopped := time.Now()
		// In its place, a listener that counts connection attempts and
		// closes each at once.
		var ln net.Listener
		waitUntil(t, "the apiserver's port to be free", 10*time.Second, func() bool {
			var err error
			ln, err = net.Listen("tcp", addr)
			return err == nil
		})
		var accepts atomic.Int64
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				accepts.Add(1)
				conn.Close()
			}
		}()
		// Five kubectl runs: each is refused with a Status, and jitproxy
		// makes one connection attempt per request it refuses, no more.
		const n = 5
		audited := refusals(t, p, 502, "the target could not be reached")
		start := time.Now()
		var got string
		for range n {
			got = ag.mustFail("Error from server (ServiceUnavailable): jitproxy: the target could not be reached", "get", "pods", "-n", "demo")
			noInternals(t, got, addr)
		}
		reqs := refused(t, p, 502, "the target could not be reached")[audited:]
		t.Logf("%d kubectl runs, apiserver down, in %s: %d requests refused %q, %d connection attempts (%.1f per run):\n%s",
			n, time.Since(start).Round(time.Millisecond), len(reqs), reqs, accepts.Load(), float64(accepts.Load())/n, got)
		if a := accepts.Load(); a > int64(len(reqs)) || a > 2*n {
			t.Errorf("%d connection attempts for %d runs of kubectl (%d requests): a retry storm", a, n, len(reqs))
		}
		// A kubectl with no discovery cache asks for discovery first, and
		// again after each failure: the attempts follow its requests.
		cold := *ag
		cold.home = t.TempDir()
		before, audited := accepts.Load(), len(refused(t, p, 502, "the target could not be reached"))
		got = cold.mustFail("Error from server", "get", "pods", "-n", "demo")
		reqs = refused(t, p, 502, "the target could not be reached")[audited:]
		t.Logf("kubectl with no discovery cache, apiserver down: %d requests refused, %d connection attempts:\n%s", len(reqs), accepts.Load()-before, got)
		noInternals(t, got, addr)
		if d := accepts.Load() - before; d > int64(len(reqs)) || d > 10 {
			t.Errorf("kubectl with no discovery cache: %d connection attempts for %d requests", d, len(reqs))
		}
		// A grant not yet minted: TokenRequest needs the apiserver too.
		fresh := request(t, "pod-reader", "--as", "dev", "--namespace", "staging", "--duration", "30m", "--reason", "minted while down")
		before = accepts.Load()
		ag.mustFail(fmt.Sprintf("jitproxy: could not obtain a credential for grant %s; the request was not forwarded", fresh), "get", "pods", "-n", "staging")
		t.Logf("a mint with the apiserver down: %d connection attempts", accepts.Load()-before)
		if d := accepts.Load() - before; d > 2 {
			t.Errorf("a mint with the apiserver down made %d connection attempts, want at most 2", d)
		}
		ln.Close()
		wg.Wait()

		if err := c.env.Kube.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		waitUntil(t, "kubectl to work again", 30*time.Second, func() bool {
			_, err := ag.run("get", "pods", "-n", "demo")
			return err == nil
		})
		t.Logf("apiserver down for %s; kubectl worked again %s after it was ready", restarted.Sub(stopped).Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
		ag.mustRun("get", "pods", "-n", "staging")
		collectMinted(t)
		p.mustCLI("grant", "revoke", id, "--as", "dev")
		p.mustCLI("grant", "revoke", fresh, "--as", "dev")
	})

	p.stop()
	t.Run("secrets are nowhere they do not belong", func(t *testing.T) {
		jwt, err := os.ReadFile(filepath.Join(c.dir, "jitproxy-system-jitproxy.token"))
		if err != nil {
			t.Fatal(err)
		}
		secrets := map[string]string{
			"the agent's token":          agentCanary,
			"the apiserver admin token":  c.env.Kube.AdminToken,
			"jitproxy's own token":       c.env.Kube.JitproxyToken,
			"Vault's cluster token":      c.env.Kube.VaultToken,
			"the Vault root token":       c.env.Vault.RootToken,
			"jitproxy's Vault login JWT": strings.TrimSpace(string(jwt)),
		}
		c.mu.Lock()
		minted = append(minted, c.minted...)
		c.mu.Unlock()
		for i, tok := range minted {
			secrets[fmt.Sprintf("minted token %d", i)] = tok
		}
		if len(minted) < 5 {
			t.Errorf("only %d minted tokens collected", len(minted))
		}
		for what, s := range secrets {
			if got := out.containing(s); len(got) != 0 {
				t.Errorf("%s appears in %v", what, got)
			}
		}
	})
}

// refusals counts the audited requests jitproxy answered itself with
// status, giving msg as the error or as the decision's reason: refused
// rather than relayed from the target.
func refusals(t *testing.T, p *proxyProc, status int, msg string) int {
	t.Helper()
	return len(refused(t, p, status, msg))
}

// refused returns the method and path of each request refusals counts.
func refused(t *testing.T, p *proxyProc, status int, msg string) []string {
	t.Helper()
	var out []string
	for _, e := range p.settledAuditEvents() {
		o, _ := e["outcome"].(map[string]any)
		if e["type"] != "request" || o == nil || o["status"] != float64(status) {
			continue
		}
		why, _ := o["error"].(string)
		if d, ok := e["decision"].(map[string]any); ok {
			rs, _ := d["reasons"].([]any)
			for _, r := range rs {
				why += "\n" + fmt.Sprint(r)
			}
		}
		if strings.Contains(why, msg) {
			a, _ := e["action"].(map[string]any)
			out = append(out, fmt.Sprint(a["method"], " ", a["path"]))
		}
	}
	return out
}

// noInternals fails if an answer to the agent carries what belongs in the
// log only: a dependency's address, a Go error.
func noInternals(t *testing.T, got string, addrs ...string) {
	t.Helper()
	for _, s := range append(addrs, "dial tcp", "connection refused", "x509", "EOF", "context deadline") {
		if strings.Contains(got, s) {
			t.Errorf("the agent's answer carries %q:\n%s", s, got)
		}
	}
}

func writeFile(t *testing.T, path, data string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsRecorder is a TLS server with a certificate from a CA of its own: it
// counts the connections made to it and records the requests that arrive,
// which only a client that does not verify its certificate can send.
type tlsRecorder struct {
	*httptest.Server
	mu    sync.Mutex
	conns int
	auth  []string
}

func newTLSRecorder(t *testing.T) *tlsRecorder {
	r := &tlsRecorder{}
	r.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		r.auth = append(r.auth, req.Header.Get("Authorization"))
		r.mu.Unlock()
		http.Error(w, "impostor", http.StatusTeapot)
	}))
	r.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			r.mu.Lock()
			r.conns++
			r.mu.Unlock()
		}
	}
	r.Config.ErrorLog = log.New(io.Discard, "", 0) // the handshakes jitproxy refuses
	r.StartTLS()
	t.Cleanup(r.Close)
	return r
}

func (r *tlsRecorder) counts() (conns, requests int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conns, len(r.auth)
}

// withBearer reports whether a request carried a bearer token (not
// which: the test output is no place for it).
func (r *tlsRecorder) withBearer() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.auth {
		if strings.HasPrefix(a, "Bearer ") {
			return true
		}
	}
	return false
}
