package test

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestPolicyReload runs the jitproxy binary with its policies in
// directories and changes them under it: a broken Rego file is rejected
// (logged, audited, and a request allowed before is still allowed), and a
// valid one that forbids reading pods, with SIGHUP, is put in force (the
// same request is then denied, by the new policy).
func TestPolicyReload(t *testing.T) {
	const ownToken, minted = "jitproxy-own-token-reload", "minted-token-reload"
	api := startFakeAPIServer(t, ownToken, minted)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	// The shipped policies, as files.
	for _, set := range []string{"authz", "access"} {
		src := filepath.Join("..", "policies", set)
		entries, err := os.ReadDir(src)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			write(filepath.Join(set, e.Name()), string(mustRead(t, filepath.Join(src, e.Name()))))
		}
	}
	write("state/identities.yaml", identitiesYAML)
	caPath := write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))
	tokenPath := write("own-token", ownToken)
	cfg := write("jitproxy.yaml", fmt.Sprintf(`
state_dir: state
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
policies: {authz_dir: authz, access_dir: access, watch_interval: 100ms}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, api.URL, caPath, tokenPath))
	p := startJitproxy(t, cfg, filepath.Join(dir, "state"), &outputs{})

	kubeconfig := filepath.Join(dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "reload-agent", "--user", "dev", "--groups", "developers",
		"--kubeconfig", kubeconfig, "--env", filepath.Join(dir, "agent.env"))
	env := mustRead(t, filepath.Join(dir, "agent.env"))
	m := regexp.MustCompile(`HTTPS_PROXY='([^']+)'`).FindSubmatch(env)
	if m == nil {
		t.Fatalf("no HTTPS_PROXY in the agent's env file:\n%s", env)
	}
	proxyURL, err := url.Parse(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, filepath.Join(dir, "jitproxy-ca.crt")))
	client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	listPods := func() (int, string) {
		t.Helper()
		resp, err := client.Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--reason", "reload test")
	if status, body := listPods(); status != http.StatusOK {
		t.Fatalf("list pods with a grant: %d %s", status, body)
	}

	// policyEvents are the policy events recorded so far.
	policyEvents := func() []map[string]any {
		var out []map[string]any
		for _, e := range p.auditEvents() {
			if typ, _ := e["type"].(string); strings.HasPrefix(typ, "policy.") {
				out = append(out, e)
			}
		}
		return out
	}
	field := func(e map[string]any, obj, key string) string {
		o, _ := e[obj].(map[string]any)
		s, _ := o[key].(string)
		return s
	}
	describe := func(e map[string]any) string {
		return fmt.Sprintf("%s (%s) %s", e["type"], field(e, "policies", "trigger"), field(e, "outcome", "error"))
	}
	// waitEvent waits for the n-th policy event (from 0) and returns it.
	waitEvent := func(what string, n int) map[string]any {
		t.Helper()
		var evs []map[string]any
		waitUntil(t, what, 30*time.Second, func() bool { evs = policyEvents(); return len(evs) > n })
		return evs[n]
	}
	start := waitEvent("the policies loaded at start", 0)
	if got := describe(start); got != "policy.loaded (startup) " {
		t.Fatalf("first policy event: %s", got)
	}

	t.Run("a broken Rego file is rejected and the old set stays", func(t *testing.T) {
		write("authz/freeze.rego", "package jitproxy.authz\n\nforbid contains \"unfinished\" if {\n")
		ev := waitEvent("the rejection of the broken file", 1)
		if got := describe(ev); !strings.HasPrefix(got, "policy.rejected (file_change) ") || !strings.Contains(got, "freeze.rego:4: rego_parse_error") {
			t.Errorf("event: %s", got)
		}
		if field(ev, "policies", "authz_digest") == field(start, "policies", "authz_digest") {
			t.Error("the rejected set's digest is the one in force")
		}
		if !strings.Contains(p.stderr.String(), "policies not reloaded: the set in force stays") {
			t.Errorf("no error in the log:\n%s", tail(p.stderr.String(), 20))
		}
		if status, body := listPods(); status != http.StatusOK {
			t.Errorf("list pods after the broken change: %d %s, want 200", status, body)
		}
	})

	t.Run("a valid Rego file and SIGHUP: the new set decides", func(t *testing.T) {
		write("authz/freeze.rego", "package jitproxy.authz\n\nforbid contains \"pod reads are frozen\" if input.action.kubernetes.resource == \"pods\"\n")
		// The poll may see the file first; the SIGHUP reloads all the same.
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		var byHUP map[string]any
		waitUntil(t, "the reload SIGHUP asked for", 30*time.Second, func() bool {
			for _, e := range policyEvents()[2:] {
				if field(e, "policies", "trigger") == "sighup" {
					byHUP = e
					return true
				}
			}
			return false
		})
		if byHUP["type"] != "policy.loaded" {
			t.Fatalf("SIGHUP's event: %s", describe(byHUP))
		}
		for _, e := range policyEvents()[2:] {
			if e["type"] != "policy.loaded" {
				t.Errorf("the valid file was rejected: %s", describe(e))
			}
		}
		status, body := listPods()
		if status != http.StatusForbidden || !strings.Contains(body, "pod reads are frozen") {
			t.Errorf("list pods after the reload: %d %s, want 403 pod reads are frozen", status, body)
		}
		// The grant is untouched: the policies, not a revocation, deny.
		if got := p.mustCLI("grant", "list", "--as", "dev"); !strings.Contains(got, "ACTIVE") {
			t.Errorf("grant list:\n%s", got)
		}
	})

	t.Run("an access policy narrowed: its grant is revoked, with why", func(t *testing.T) {
		narrowed := strings.Replace(string(mustRead(t, filepath.Join("..", "policies", "access", "pod-reader.yaml"))),
			"resources: [pods, pods/log]", "resources: [pods]", 1)
		if !strings.Contains(narrowed, "resources: [pods]\n") {
			t.Fatal("the shipped pod-reader no longer reads as this test expects")
		}
		write("access/pod-reader.yaml", narrowed)
		var got string
		waitUntil(t, "the grant to be revoked", 30*time.Second, func() bool {
			got = p.mustCLI("grant", "list", "--as", "dev", "--state", "revoked")
			return strings.Contains(got, "pod-reader")
		})
		id := strings.Fields(strings.Split(strings.TrimSpace(got), "\n")[1])[0]
		if shown := p.mustCLI("grant", "show", id, "--as", "dev"); !strings.Contains(shown, "by jitproxy") ||
			!strings.Contains(shown, `access policy "pod-reader" changed`) || !strings.Contains(shown, "no longer gives every permission") {
			t.Errorf("grant show:\n%s", shown)
		}
	})

	t.Run("an auto-approval rule approves a short request without a person", func(t *testing.T) {
		loaded := len(policyEvents())
		write("authz/approval.rego", `package jitproxy.approval

auto_approve contains "short-edits" if {
	input.policy == "namespace-editor"
	input.duration_seconds <= 600
}
`)
		waitEvent("the set with the approval rule", loaded)
		short := p.mustCLI("grant", "request", "namespace-editor", "--as", "dev", "--namespace", "demo", "--duration", "10m", "--reason", "quick fix")
		if !strings.Contains(short, "ACTIVE") || !strings.Contains(short, "approved by rule:short-edits") {
			t.Errorf("a 10m request:\n%s", short)
		}
		if long := p.mustCLI("grant", "request", "namespace-editor", "--as", "dev", "--namespace", "demo", "--duration", "1h", "--reason", "longer fix"); !strings.Contains(long, "PENDING") {
			t.Errorf("a 1h request:\n%s", long)
		}
	})

	t.Run("the process is still serving after SIGHUP", func(t *testing.T) {
		select {
		case <-p.done:
			t.Fatalf("jitproxy exited:\n%s", tail(p.stderr.String(), 20))
		default:
		}
	})
}
