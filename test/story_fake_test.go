package test

import (
	"crypto/tls"

	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// identitiesYAML are the admin-API identities of the story. carol may both
// request (developers) and approve (sre), to show she cannot approve herself.
const identitiesYAML = `
- {name: runner, groups: ["jitproxy:runners"], token: runner-token-0123456789}
- {name: dev, groups: [developers], token: dev-token-0123456789abc}
- {name: approver, groups: [sre], token: approver-token-0123456789}
- {name: carol, groups: [developers, sre], token: carol-token-0123456789}
- {name: root, groups: ["jitproxy:admins"], token: root-token-0123456789ab}
`

// storyEnv is one jitproxy with a session and an agent.
type storyEnv struct {
	proxy *proxyProc
	agent *agent
	out   *outputs
	dir   string
}

// grantID pulls the grant ID out of `jitproxy grant request` output.
var grantIDPattern = regexp.MustCompile(`grant (g-[a-z2-7]+):`)

func grantID(t *testing.T, out string) string {
	t.Helper()
	m := grantIDPattern.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no grant ID in %q", out)
	}
	return m[1]
}

// TestStoryFakeUpstream walks the user story of the foundation issue with the
// real jitproxy binary and the real kubectl. The upstream is a fake
// apiserver (see fakeapiserver_test.go) so that the test sees exactly which
// token reaches it; the real-cluster story is TestStoryRealCluster.
func TestStoryFakeUpstream(t *testing.T) {
	const (
		agentCanary  = "agent-canary-7f1d2e9c4b"  // the token the agent holds and sends
		mintedCanary = "minted-canary-3a8e6b0d51" // the token TokenRequest mints
		ownToken     = "jitproxy-own-token-5c2f"  // jitproxy's own credential for TokenRequest
	)
	api := startFakeAPIServer(t, ownToken, mintedCanary)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	write := fileWriter(t, dir)
	write("state/identities.yaml", identitiesYAML)
	caPath := write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))
	tokenPath := write("own-token", ownToken)
	cfg := write("jitproxy.yaml", fmt.Sprintf(`
state_dir: state
log: {level: debug}
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
audit: {stdout: true, file: state/audit.jsonl}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, api.URL, caPath, tokenPath))
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)

	// 2. The runner creates a session; the answer is all the agent needs.
	kubeconfig := filepath.Join(dir, "agent.kubeconfig")
	sessionOut := p.mustCLI("session", "create", "--as", "runner", "--agent", "e2e-agent", "--user", "dev",
		"--groups", "developers", "--kubeconfig", kubeconfig, "--env", filepath.Join(dir, "agent.env"))
	if !strings.Contains(sessionOut, "agent e2e-agent for user dev") {
		t.Fatalf("session create: %s", sessionOut)
	}
	ag := &agent{t: t, kubectl: kubectlPath(t), kubeconfig: kubeconfig, home: filepath.Join(dir, "home"), out: out}
	env, _ := os.ReadFile(filepath.Join(dir, "agent.env"))
	proxyURL := regexp.MustCompile(`HTTPS_PROXY='([^']+)'`).FindSubmatch(env)
	if proxyURL == nil {
		t.Fatalf("no HTTPS_PROXY in the agent's env file:\n%s", env)
	}
	agentProxy, _ := url.Parse(string(proxyURL[1]))
	kubectl := func(args ...string) []string { return append([]string{"--token", agentCanary}, args...) }

	t.Run("no grant: 403 naming the policy and the command", func(t *testing.T) {
		got := ag.mustFail("Access policies that would allow it: pod-reader", kubectl("get", "pods", "-n", "demo")...)
		if !strings.Contains(got, `jitproxy grant request pod-reader --namespace demo`) || !strings.Contains(got, "Forbidden") {
			t.Errorf("kubectl output:\n%s", got)
		}
	})

	t.Run("CONNECT to a host that is not a target is refused", func(t *testing.T) {
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(mustRead(t, filepath.Join(dir, "jitproxy-ca.crt")))
		c := &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(agentProxy), TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
		_, err := c.Get("https://example.com/")
		const refused = "is not allowed: jitproxy intercepts only its configured targets"
		if err == nil || !strings.Contains(err.Error(), refused) {
			t.Errorf("GET https://example.com via jitproxy: %v, want the 403 refusal", err)
		}
		_, err = c.Get(api.URL + "/api") // the upstream itself, by address
		if err == nil || !strings.Contains(err.Error(), refused) {
			t.Errorf("GET the upstream's address via jitproxy: %v, want the 403 refusal", err)
		}
	})

	t.Run("grant request refusals", func(t *testing.T) {
		tests := []struct {
			name string
			args []string
			want string
		}{
			{name: "over-long duration", args: []string{"grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "2h", "--reason", "r"}, want: `duration 2h0m0s exceeds the maximum 1h0m0s of access policy "pod-reader"`},
			{name: "namespace outside policy", args: []string{"grant", "request", "pod-reader", "--as", "dev", "--namespace", "prod", "--reason", "r"}, want: `allows namespaces [demo staging], not "prod"`},
			{name: "not a subject", args: []string{"grant", "request", "pod-reader", "--as", "approver", "--namespace", "demo", "--reason", "r"}, want: `approver may not request access policy "pod-reader"`},
			{name: "no reason", args: []string{"grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo"}, want: "a reason is required"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := p.cli(tt.args...)
				if err == nil || !strings.Contains(got, tt.want) {
					t.Errorf("jitproxy %s = %v %q, want an error containing %q", strings.Join(tt.args, " "), err, got, tt.want)
				}
			})
		}
	})

	var readID string
	t.Run("grant without approval is active at once and kubectl works", func(t *testing.T) {
		got := p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "investigate web")
		readID = grantID(t, got)
		if !strings.Contains(got, "ACTIVE") {
			t.Fatalf("grant request: %s", got)
		}
		if got := ag.mustRun(kubectl("get", "pods", "-n", "demo")...); !strings.Contains(got, "web") {
			t.Errorf("kubectl get pods:\n%s", got)
		}
	})

	t.Run("upstream saw only the minted token", func(t *testing.T) {
		var podReqs int
		for _, r := range api.seen() {
			if strings.HasSuffix(r.Path, "/token") {
				continue
			}
			if got := r.Header.Get("Authorization"); got != "Bearer "+mintedCanary {
				t.Errorf("%s %s carried Authorization %q", r.Method, r.Path, got)
			}
			for k := range r.Header {
				if strings.HasPrefix(k, "Impersonate-") || k == "Proxy-Authorization" {
					t.Errorf("%s %s carried %s", r.Method, r.Path, k)
				}
			}
			if strings.HasSuffix(r.Path, "/pods") {
				podReqs++
			}
		}
		if podReqs == 0 {
			t.Error("no pod request reached the upstream")
		}
		want := map[string]int{
			"/api/v1/namespaces/default/serviceaccounts/default/token":          1, // the discovery identity
			"/api/v1/namespaces/demo/serviceaccounts/jitproxy-pod-reader/token": 1, // the grant's, cached after
		}
		api.mu.Lock()
		defer api.mu.Unlock()
		if diff := cmp.Diff(want, api.mints); diff != "" {
			t.Errorf("TokenRequests (-want +got):\n%s", diff)
		}
	})

	t.Run("outside the grant is denied by policy", func(t *testing.T) {
		before := len(api.seen())
		ag.mustFail(`jitproxy denied list pods in namespace "prod"`, kubectl("get", "pods", "-n", "prod")...)
		ag.mustFail(`jitproxy denied delete pods "web" in namespace "demo"`, kubectl("delete", "pod", "web", "-n", "demo")...)
		for _, r := range api.seen()[before:] {
			if strings.Contains(r.Path, "/prod/") || r.Method == http.MethodDelete {
				t.Errorf("a denied request reached the upstream: %s %s", r.Method, r.Path)
			}
		}
	})

	t.Run("approval: pending, no self-approval, approved", func(t *testing.T) {
		got := p.mustCLI("grant", "request", "namespace-editor", "--as", "carol", "--namespace", "demo", "--reason", "roll back web")
		id := grantID(t, got)
		if !strings.Contains(got, "PENDING") {
			t.Fatalf("grant request: %s", got)
		}
		if got, err := p.cli("grant", "approve", id, "--as", "carol"); err == nil || !strings.Contains(got, "carol cannot approve or deny their own request") {
			t.Errorf("self-approval: %v %s", err, got)
		}
		if got, err := p.cli("grant", "approve", id, "--as", "dev"); err == nil || !strings.Contains(got, "dev is not an approver") {
			t.Errorf("approval by a non-approver: %v %s", err, got)
		}
		if got := p.mustCLI("grant", "approve", id, "--as", "approver", "--comment", "ok"); !strings.Contains(got, "ACTIVE") {
			t.Errorf("approve: %s", got)
		}
		if got := p.mustCLI("grant", "show", id, "--as", "carol"); !strings.Contains(got, "approved by approver") {
			t.Errorf("show: %s", got)
		}
		if got := p.mustCLI("grant", "revoke", id, "--as", "approver", "--reason", "done"); !strings.Contains(got, "REVOKED") {
			t.Errorf("revoke: %s", got)
		}
		denied := grantID(t, p.mustCLI("grant", "request", "namespace-editor", "--as", "dev", "--namespace", "demo", "--reason", "again"))
		if got := p.mustCLI("grant", "deny", denied, "--as", "approver", "--reason", "not now"); !strings.Contains(got, "DENIED") {
			t.Errorf("deny: %s", got)
		}
		if got := p.mustCLI("grant", "list", "--as", "approver", "--state", "denied"); !strings.Contains(got, denied) {
			t.Errorf("list --state denied:\n%s", got)
		}
	})

	t.Run("after revoke the next request is denied", func(t *testing.T) {
		p.mustCLI("grant", "revoke", readID, "--as", "dev", "--reason", "done")
		ag.mustFail("no active grant permits this request", kubectl("get", "pods", "-n", "demo")...)
	})

	t.Run("after expiry the next request is denied", func(t *testing.T) {
		id := grantID(t, p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "4s", "--reason", "quick look"))
		ag.mustRun(kubectl("get", "pods", "-n", "demo")...)
		waitUntil(t, "the grant to expire", 30*time.Second, func() bool {
			_, err := ag.run(kubectl("get", "pods", "-n", "demo")...)
			return err != nil
		})
		ag.mustFail("no active grant permits this request", kubectl("get", "pods", "-n", "demo")...)
		waitUntil(t, "the expiry to be recorded", 10*time.Second, func() bool {
			return strings.Contains(p.mustCLI("grant", "show", id, "--as", "dev"), "EXPIRED")
		})
	})

	t.Run("audit stream", func(t *testing.T) {
		types := map[string]int{}
		for _, e := range p.settledAuditEvents() {
			if e["version"] != "jitproxy.audit/v1" {
				t.Fatalf("event without version: %v", e)
			}
			types[e["type"].(string)]++
			if e["type"] == "request" && e["action"].(map[string]any)["method"] != "CONNECT" {
				c := e["caller"].(map[string]any)
				if c["session"] == "" || c["user"] != "dev" || c["agent"] != "e2e-agent" || e["outcome"] == nil {
					t.Errorf("request event lacks who or outcome: %v", e)
				}
			}
		}
		for _, typ := range []string{"session.created", "grant.requested", "grant.activated", "grant.approved", "grant.denied", "grant.revoked", "grant.expired", "credential.minted", "credential.released", "request"} {
			if types[typ] == 0 {
				t.Errorf("no %s event; got %v", typ, types)
			}
		}
		file := mustRead(t, filepath.Join(state, "audit.jsonl"))
		if string(file) != p.stdout.String() {
			t.Error("the audit file and stdout differ")
		}
	})

	p.stop()
	out.add("audit file", string(mustRead(t, filepath.Join(state, "audit.jsonl"))))
	for _, r := range api.seen() {
		if strings.HasSuffix(r.Path, "/token") {
			out.add("upstream TokenRequest headers", fmt.Sprint(r.Header))
		} else {
			out.add("upstream request headers", fmt.Sprint(r.Header))
		}
	}
	t.Run("canaries are only where they belong", func(t *testing.T) {
		if got := out.containing(agentCanary); len(got) != 0 {
			t.Errorf("the agent's token appears in %v", got)
		}
		if got := out.containing(mintedCanary); len(got) != 1 || got[0] != "upstream request headers" {
			t.Errorf("the minted token appears in %v, want only the upstream's request headers", got)
		}
		if got := out.containing(ownToken); len(got) != 1 || got[0] != "upstream TokenRequest headers" {
			t.Errorf("jitproxy's own token appears in %v, want only its TokenRequests", got)
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
