package test

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/jitproxy/jitproxy/test/servers"
)

// chromiumPath finds headless Chromium. Missing, the test is skipped on a
// developer's machine and fails in CI (CI set), where `make test-env`
// installs it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium not found: `make test-env` installs it (Debian package chromium)")
	}
	t.Skip("chromium not found: run `make test-env` (or apt-get install chromium) to run the approval page's browser test")
	return ""
}

// TestApprovalPageInBrowser signs an approver in to the approval page with
// headless Chromium through a real OpenID provider (oidc-provider, its own
// login form), approves an agent's pending request there with a comment,
// and sees the agent's next request through jitproxy succeed. The provider's
// users are mapped to jitproxy's (admin.users): the approver acts as
// approver, and carol, signed in with the provider, is not offered the
// request she made with her static token.
func TestApprovalPageInBrowser(t *testing.T) {
	chromium := chromiumPath(t)
	const (
		mintedToken  = "minted-token-page-5d1c"
		ownToken     = "jitproxy-own-token-page"
		clientSecret = "page-client-secret-8e2f4a"
		comment      = "approved from the page"
		reason       = `fix the <b>web</b> rollout & "check" it`
	)
	api := startFakeAPIServer(t, ownToken, mintedToken)
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	write := fileWriter(t, dir)
	write("state/identities.yaml", identitiesYAML)
	adminPort, err := servers.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := fmt.Sprintf("127.0.0.1:%d", adminPort)
	redirect := "http://" + adminAddr + "/ui/callback"
	ctx := context.Background()
	idp, err := servers.StartOIDCProvider(ctx, dir, []servers.OIDCUser{
		{ID: "u-approver", Username: "approver", Password: "approver-password", Email: "approver@example.com", Groups: []string{"sre"}},
		{ID: "u-carol", Username: "carol", Password: "carol-password", Email: "carol@example.com", Groups: []string{"sre"}},
	}, "jitproxy-page", clientSecret, redirect)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(idp.Stop)

	cfg := write("jitproxy.yaml", fmt.Sprintf(`
state_dir: state
log: {level: debug}
proxy: {listen: 127.0.0.1:0}
admin:
  listen: %s
  oidc:
    - {name: corp, issuer: %s, client_ids: [jitproxy-page], username_claim: email}
  users:
    - {name: approver, groups: [sre], identities: ["token:approver", "oidc:corp:approver@example.com"]}
    - {name: carol, groups: [developers, sre], identities: ["token:carol", "oidc:corp:carol@example.com"]}
  page:
    enabled: true
    oidc:
      provider: corp
      client_id: jitproxy-page
      client_secret_file: %s
      redirect_url: %s
audit: {stdout: true}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, adminAddr, idp.Issuer, write("client-secret", clientSecret), redirect, api.URL,
		write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))),
		write("own-token", ownToken)))
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)

	// The runner starts the agent's session; the agent asks for a grant
	// with its own session credential.
	kubeconfig := filepath.Join(dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "page-agent", "--user", "dev",
		"--groups", "developers", "--kubeconfig", kubeconfig, "--env", filepath.Join(dir, "agent.env"))
	envFile, _ := os.ReadFile(filepath.Join(dir, "agent.env"))
	m := regexp.MustCompile(`HTTPS_PROXY='([^']+)'`).FindSubmatch(envFile)
	if m == nil {
		t.Fatalf("no HTTPS_PROXY in the agent's env file:\n%s", envFile)
	}
	agentProxy, _ := url.Parse(string(m[1]))
	body, _ := json.Marshal(map[string]string{"policy": "namespace-editor", "namespace": "demo", "reason": reason})
	req, _ := http.NewRequest("POST", p.adminURL+"/v1/grants", strings.NewReader(string(body)))
	sec, _ := agentProxy.User.Password()
	req.SetBasicAuth(agentProxy.User.Username(), sec)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var g struct {
		ID    string `json:"id"`
		State string `json:"state"`
	}
	if json.Unmarshal(answer, &g); resp.StatusCode != http.StatusCreated || g.State != "PENDING" {
		t.Fatalf("agent's grant request: %s %s", resp.Status, answer)
	}
	ag := &agent{t: t, kubectl: kubectlPath(t), kubeconfig: kubeconfig, home: filepath.Join(dir, "home"), out: out}
	ag.mustFail("Forbidden", "get", "pods", "-n", "demo")
	// carol, an SRE and a developer, asks for herself with her static token.
	carolsGrant := regexp.MustCompile(`g-[a-z0-9]+`).FindString(p.mustCLI("grant", "request", "namespace-editor", "--as", "carol", "--namespace", "demo", "--reason", "carol's own"))

	// newBrowser starts a Chromium of its own: a person's sign-in is not
	// shared with the next one's.
	newBrowser := func(name string) context.Context {
		opts := append(chromedp.DefaultExecAllocatorOptions[:],
			chromedp.ExecPath(chromium), chromedp.UserDataDir(filepath.Join(dir, "chromium-"+name)), chromedp.NoSandbox,
			chromedp.Flag("headless", true), chromedp.Flag("disable-gpu", true), chromedp.Flag("no-first-run", true),
			chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
			chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
			chromedp.ProxyServer("direct://"),
		)
		actx, cancelAlloc := chromedp.NewExecAllocator(ctx, opts...)
		t.Cleanup(cancelAlloc)
		bctx, cancelBrowser := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
		t.Cleanup(cancelBrowser)
		bctx, cancel := context.WithTimeout(bctx, 2*time.Minute)
		t.Cleanup(cancel)
		return bctx
	}
	bctx := newBrowser("approver")

	article := "#request-" + g.ID
	browser := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(bctx, steps...); err != nil {
			t.Fatalf("browser: %s: %v\noidc-provider log:\n%s", what, err, idp.Tail(30))
		}
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(bctx, chromedp.Text(chromedp.CSS(sel)))
		if err != nil {
			t.Fatalf("browser: text of %s: %v", sel, err)
		}
		return s
	}
	browser("sign in at the provider's own form",
		chromedp.Navigate(p.adminURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), "approver"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "approver-password"),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(article)),
	)
	user, shownReason := text(`#user`), text(article+" .reason")
	browser("approve with a comment",
		chromedp.SendKeys(chromedp.CSS(article+" .comment"), comment),
		chromedp.Click(chromedp.CSS(article+" .approve")),
		chromedp.WaitVisible(chromedp.CSS(`#recent`)),
	)
	recent := text(`#recent`)
	if user != "approver" {
		t.Errorf("signed in as %q, want approver (admin.users maps approver@example.com)", user)
	}
	if shownReason != reason {
		t.Errorf("the page shows the reason as %q, want %q", shownReason, reason)
	}
	if !strings.Contains(recent, "approver") || !strings.Contains(recent, comment) {
		t.Errorf("recent decisions:\n%s", recent)
	}

	// The agent's next request goes through.
	waitUntil(t, "the approved grant to let kubectl list pods", 20*time.Second, func() bool {
		_, err := ag.run("get", "pods", "-n", "demo")
		return err == nil
	})

	// The approval was recorded as the approver's, with the comment.
	var found bool
	for _, e := range p.settledAuditEvents() {
		if e["type"] != "grant.approved" {
			continue
		}
		actor, _ := e["actor"].(map[string]any)
		found = found || actor["name"] == "approver" && actor["auth_method"] == "oidc" && actor["identity"] == "oidc:corp:approver@example.com"
	}
	if !found {
		t.Errorf("no grant.approved event with the approver as actor:\n%s", p.stdout.String())
	}
	if got, _ := p.cli("grant", "show", g.ID, "--as", "dev"); !strings.Contains(got, comment) {
		t.Errorf("grant show lacks the approver's comment:\n%s", got)
	}

	// carol signs in with the provider: she is carol, and her own request,
	// made with her static token, is not hers to approve.
	bctx = newBrowser("carol")
	browser("carol signs in",
		chromedp.Navigate(p.adminURL+"/ui/"),
		chromedp.WaitVisible(chromedp.CSS(`#username`)),
		chromedp.SendKeys(chromedp.CSS(`#username`), "carol"),
		chromedp.SendKeys(chromedp.CSS(`#password`), "carol-password"),
		chromedp.Submit(chromedp.CSS(`#password`)),
		chromedp.WaitVisible(chromedp.CSS(`#no-pending`)),
	)
	if user := text(`#user`); user != "carol" {
		t.Errorf("signed in as %q, want carol", user)
	}
	if got := p.mustCLI("grant", "show", carolsGrant, "--as", "carol"); !strings.Contains(got, "PENDING") {
		t.Errorf("carol's grant:\n%s", got)
	}
}
