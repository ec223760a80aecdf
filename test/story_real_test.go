package test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/jitproxy/jitproxy/test/servers"
)

// realCluster is the environment of TestStoryRealCluster: every server real.
type realCluster struct {
	env     *servers.Env
	root    string
	kubectl string
	admin   *kubernetes.Clientset
	rdb     *redis.Client
	dir     string

	// adminYAML is YAML under the configuration's admin key, beside listen
	// (users, oidc, service_accounts), indented by two spaces.
	adminYAML string

	mu     sync.Mutex
	minted []string // every token jitproxy minted, read from Redis: canaries
}

func startRealCluster(t *testing.T, o servers.Options) *realCluster {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := servers.Root()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := kubectlPath(t)
	dir := t.TempDir()
	env, err := servers.StartEnv(ctx, dir, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Stop()
		if t.Failed() {
			for _, p := range env.Processes() {
				t.Logf("%s log, last lines:\n%s", p.Name, p.Tail(20))
			}
			kept := filepath.Join(root, ".cache", "test-logs", strings.ReplaceAll(t.Name(), "/", "_"))
			if err := env.KeepLogs(kept); err == nil {
				t.Logf("server logs kept in %s", kept)
			}
		}
	})
	if err := env.Bootstrap(ctx, root, kubectl); err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(&rest.Config{Host: env.Kube.URL, BearerToken: env.Kube.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: env.Kube.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: env.Redis.Addr})
	t.Cleanup(func() { rdb.Close() })
	return &realCluster{env: env, root: root, kubectl: kubectl, admin: admin, rdb: rdb, dir: dir}
}

// config writes jitproxy's configuration for the cluster: real Redis, the
// cluster as target demo, and the example access policies; with Vault
// running, Vault with the kubernetes auth method and the policies' Vault
// variants. extra is appended to the file (more targets, say).
func (c *realCluster) config(t *testing.T, proxyAddr, adminAddr string, extra ...string) (cfgPath, state string) {
	t.Helper()
	ctx := context.Background()
	withVault := c.env.Vault != nil
	access, err := servers.AccessPolicies(c.root, c.dir, withVault)
	if err != nil {
		t.Fatal(err)
	}
	state = filepath.Join(c.dir, "state")
	os.MkdirAll(state, 0o700)
	os.WriteFile(filepath.Join(state, "identities.yaml"), []byte(identitiesYAML), 0o600)
	cfgPath = filepath.Join(c.dir, "jitproxy.yaml")
	cfg := fmt.Sprintf(`
state_dir: %s
log: {level: debug}
proxy: {listen: %q}
admin:
  listen: %q
%sredis: {address: %q}
audit: {stdout: true}
policies: {access_dir: %s}
`, state, proxyAddr, adminAddr, c.adminYAML, c.env.Redis.Addr, access)
	vaultMount := ""
	if withVault {
		jwt, err := c.env.ServiceAccountToken(ctx, c.kubectl, "jitproxy-system", "jitproxy")
		if err != nil {
			t.Fatal(err)
		}
		cfg += fmt.Sprintf(`vault:
  address: %s
  auth: {method: kubernetes, role: jitproxy, jwt_file: %s}
`, c.env.Vault.Addr, jwt)
		vaultMount = "    vault_mount: kubernetes\n"
	}
	cfg += fmt.Sprintf(`targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, c.env.Kube.URL, c.env.Kube.CAFile, c.env.Kube.JitproxyTokenFile) + vaultMount + strings.Join(extra, "")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return cfgPath, state
}

// mintedToken reads the token jitproxy cached for a grant from Redis.
func (c *realCluster) mintedToken(t *testing.T, grantID string) (token, subject string) {
	t.Helper()
	raw, err := c.rdb.Get(context.Background(), "jitproxy:cred:"+grantID+":demo").Bytes()
	if err != nil {
		t.Fatalf("no cached credential for grant %s: %v", grantID, err)
	}
	var e struct{ Token, Subject string }
	json.Unmarshal(raw, &e)
	c.mu.Lock()
	c.minted = append(c.minted, e.Token)
	c.mu.Unlock()
	return e.Token, e.Subject
}

// as returns a client of the cluster with a bearer token, bypassing jitproxy.
func (c *realCluster) as(t *testing.T, token string) *kubernetes.Clientset {
	t.Helper()
	cs, err := kubernetes.NewForConfig(&rest.Config{Host: c.env.Kube.URL, BearerToken: token, TLSClientConfig: rest.TLSClientConfig{CAData: c.env.Kube.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

// vaultObjects says which of the ServiceAccount, Role and RoleBinding Vault
// made for subject (system:serviceaccount:NS:NAME; Vault gives all three
// the same generated name) still exist.
func (c *realCluster) vaultObjects(t *testing.T, subject string) []string {
	t.Helper()
	parts := strings.Split(subject, ":")
	ns, name := parts[2], parts[3]
	ctx := context.Background()
	var left []string
	if _, err := c.admin.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		left = append(left, "serviceaccount/"+name)
	}
	if _, err := c.admin.RbacV1().Roles(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		left = append(left, "role/"+name)
	}
	if _, err := c.admin.RbacV1().RoleBindings(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		left = append(left, "rolebinding/"+name)
	}
	return left
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// TestStoryRealCluster walks the story of the foundation issue with every
// part real: redis-server, etcd, kube-apiserver, Vault, the jitproxy binary
// and kubectl, once with each credential source.
func TestStoryRealCluster(t *testing.T) {
	const agentCanary = "agent-canary-real-5d9a0c"
	c := startRealCluster(t, servers.Options{Redis: true, Vault: true})
	proxyAddr, adminAddr := freeAddr(t), freeAddr(t)
	idp := setupIdentities(t, c)
	cfg, state := c.config(t, proxyAddr, adminAddr)
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)
	t.Run("identities", func(t *testing.T) { idp.test(t, p) })
	kubeconfig := filepath.Join(c.dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "e2e-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	ag := &agent{t: t, kubectl: c.kubectl, kubeconfig: kubeconfig, home: filepath.Join(c.dir, "home"), out: out}
	kubectl := func(args ...string) []string { return append([]string{"--token", agentCanary}, args...) }

	ag.mustFail("Access policies that would allow it: pod-reader", kubectl("get", "pods", "-n", "demo")...)
	// kubectl auth can-i is answered by jitproxy from the agent's grants,
	// with the access policy to request when the answer is no.
	ag.mustFail(`no - jitproxy would deny list pods in namespace "demo": no active grant permits this request. Access policies that would allow it: pod-reader`,
		kubectl("auth", "can-i", "list", "pods", "-n", "demo")...)
	// The session's kubeconfig works as it is: kubectl must not ask for a
	// username it does not need (jitproxy injects the credential).
	ag.mustFail("Access policies that would allow it: pod-reader", "get", "pods", "-n", "demo")
	// The cluster's real address is not a target: no tunnel to it.
	ag.mustFail("Unable to connect to the server: jitproxy: CONNECT to "+strings.TrimPrefix(c.env.Kube.URL, "https://")+" is not allowed", "--server", c.env.Kube.URL, "--insecure-skip-tls-verify", "get", "pods", "-n", "demo")
	if got, err := p.cli("grant", "request", "pod-reader-vault", "--as", "dev", "--namespace", "demo", "--duration", "3h", "--reason", "r"); err == nil || !strings.Contains(got, "exceeds the maximum 1h0m0s") {
		t.Errorf("over-long grant: %v %s", err, got)
	}
	// A dry run says what a request would do, and does nothing.
	if got, err := p.cli("grant", "request", "pod-reader-vault", "--as", "dev", "--namespace", "demo", "--duration", "3h", "--reason", "r", "--dry-run"); err == nil ||
		!strings.Contains(got, "dry run: the request would be refused") || !strings.Contains(got, "exceeds the maximum 1h0m0s") {
		t.Errorf("over-long grant, dry run: %v %s", err, got)
	}
	dry := p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "r", "--dry-run")
	for _, want := range []string{"dry run: the request would be accepted", "active at once, for 30m0s", "may get, list, watch pods"} {
		if !strings.Contains(dry, want) {
			t.Errorf("dry run without %q:\n%s", want, dry)
		}
	}
	if got := p.mustCLI("grant", "request", "namespace-editor", "--as", "dev", "--namespace", "demo", "--reason", "r", "--dry-run"); !strings.Contains(got, "then waits for 1 approval from") {
		t.Errorf("dry run of a policy that needs approval:\n%s", got)
	}
	if got := p.mustCLI("grant", "list", "--as", "dev"); strings.Contains(got, "pod-reader") || strings.Contains(got, "namespace-editor") {
		t.Errorf("a dry run made a grant:\n%s", got)
	}

	// request asks for a grant and makes sure it ends with the test, so that
	// a failure cannot leave access behind for the steps after it.
	request := func(t *testing.T, args ...string) string {
		t.Helper()
		id := grantID(t, p.mustCLI(append([]string{"grant", "request"}, args...)...))
		t.Cleanup(func() { p.cli("grant", "revoke", id, "--as", "root", "--reason", "test cleanup") })
		return id
	}

	for _, src := range []struct{ provider, reader, editor string }{
		{provider: "tokenrequest", reader: "pod-reader", editor: "namespace-editor"},
		{provider: "vault", reader: "pod-reader-vault", editor: "namespace-editor-vault"},
	} {
		t.Run(src.provider, func(t *testing.T) {
			ag.t = t
			defer func() { ag.t = nil }()
			id := request(t, src.reader, "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "look at web")
			if got := ag.mustRun(kubectl("get", "pods", "-n", "demo")...); !strings.Contains(got, "web") {
				t.Fatalf("kubectl get pods:\n%s", got)
			}
			token, subject := c.mintedToken(t, id)
			t.Run("the cluster itself enforces the scope", func(t *testing.T) {
				direct := c.as(t, token)
				ctx := context.Background()
				if _, err := direct.CoreV1().Pods("demo").List(ctx, metav1.ListOptions{}); err != nil {
					t.Errorf("the minted token cannot list pods in demo: %v", err)
				}
				err := direct.CoreV1().Pods("demo").Delete(ctx, "web", metav1.DeleteOptions{})
				if err == nil || !strings.Contains(err.Error(), "forbidden") {
					t.Errorf("the minted token deleting a pod: %v, want forbidden by the apiserver", err)
				}
				if _, err := direct.CoreV1().Pods("staging").List(ctx, metav1.ListOptions{}); err == nil || !strings.Contains(err.Error(), "forbidden") {
					t.Errorf("the minted token listing pods in staging: %v, want forbidden by the apiserver", err)
				}
			})
			ag.mustFail(`jitproxy denied delete pods "web" in namespace "demo"`, kubectl("delete", "pod", "web", "-n", "demo")...)
			if got := ag.mustRun(kubectl("auth", "can-i", "list", "pods", "-n", "demo")...); strings.TrimSpace(got) != "yes" {
				t.Errorf("kubectl auth can-i list pods under the grant:\n%s", got)
			}
			ag.mustFail(`no - jitproxy would deny delete pods "web" in namespace "demo"`, kubectl("auth", "can-i", "delete", "pod/web", "-n", "demo")...)
			if got := ag.mustRun(kubectl("auth", "can-i", "--list", "-n", "demo")...); !regexp.MustCompile(`(?m)^pods\s+\[\]\s+\[\]\s+\[get list watch\]`).MatchString(got) {
				t.Errorf("kubectl auth can-i --list under the grant:\n%s", got)
			}
			ag.mustFail(`jitproxy denied list pods in namespace "staging"`, kubectl("get", "pods", "-n", "staging")...)

			if src.provider == "vault" {
				if left := c.vaultObjects(t, subject); len(left) != 3 {
					t.Logf("objects: %v", left)
					t.Fatalf("Vault made %v for %s, want a serviceaccount, role and rolebinding", left, subject)
				}
			}
			p.mustCLI("grant", "revoke", id, "--as", "dev", "--reason", "done")
			ag.mustFail("no active grant permits this request", kubectl("get", "pods", "-n", "demo")...)
			if src.provider == "vault" {
				waitUntil(t, "Vault to delete what it made for the revoked grant", 20*time.Second, func() bool { return len(c.vaultObjects(t, subject)) == 0 })
			}

			t.Run("approval, admission and expiry", func(t *testing.T) {
				outer := ag.t
				ag.t = t
				defer func() { ag.t = outer }()
				edit := request(t, src.editor, "--as", "carol", "--namespace", "demo", "--reason", "set a flag")
				if got, err := p.cli("grant", "approve", edit, "--as", "carol"); err == nil || !strings.Contains(got, "cannot approve or deny their own request") {
					t.Errorf("self-approval: %v %s", err, got)
				}
				p.mustCLI("grant", "approve", edit, "--as", "approver")
				// carol's grant; the agent acts for dev, so dev requests one too.
				p.mustCLI("grant", "revoke", edit, "--as", "carol")
				edit = request(t, src.editor, "--as", "dev", "--namespace", "demo", "--reason", "set a flag")
				cm := "flag-" + src.provider
				// Denied while pending, and told what the request waits for.
				ag.mustFail("Your request that would allow it is pending: grant "+edit+" ("+src.editor+") is waiting for 1 approval from",
					kubectl("create", "configmap", cm, "-n", "demo", "--from-literal=on=true")...)
				p.mustCLI("grant", "approve", edit, "--as", "approver")
				ag.mustRun(kubectl("create", "configmap", cm, "-n", "demo", "--from-literal=on=true")...)
				ag.mustFail(`pod violates PodSecurity "baseline:latest": privileged (container "priv" must not set securityContext.privileged=true)`, kubectl("run", "priv", "-n", "demo", "--image=registry.k8s.io/pause:3.10", "--privileged")...)
				ag.mustRun(kubectl("delete", "configmap", cm, "-n", "demo")...)
				_, editSubject := c.mintedToken(t, edit)
				p.mustCLI("grant", "revoke", edit, "--as", "approver")

				short := request(t, src.reader, "--as", "dev", "--namespace", "demo", "--duration", "5s", "--reason", "quick look")
				ag.mustRun(kubectl("get", "pods", "-n", "demo")...)
				_, shortSubject := c.mintedToken(t, short)
				waitUntil(t, "the grant to expire", 30*time.Second, func() bool {
					_, err := ag.run(kubectl("get", "pods", "-n", "demo")...)
					return err != nil
				})
				ag.mustFail("no active grant permits this request", kubectl("get", "pods", "-n", "demo")...)
				if src.provider == "vault" {
					waitUntil(t, "Vault to delete what it made for the revoked editor grant", 30*time.Second, func() bool {
						return len(c.vaultObjects(t, editSubject)) == 0
					})
					waitUntil(t, "Vault to delete what it made for the expired grant", 30*time.Second, func() bool {
						return len(c.vaultObjects(t, shortSubject)) == 0
					})
				}
			})
		})
	}
	ag.t = t

	t.Run("learning mode", func(t *testing.T) {
		ag.t = t
		defer func() { ag.t = nil }()
		learningStory(t, c, p, ag, kubectl, request)
	})
	ag.t = t

	var events []map[string]any // audit events of the jitproxy before the restart
	t.Run("a restart keeps grants and sessions", func(t *testing.T) {
		id := request(t, "pod-reader-vault", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "across a restart")
		ag.mustRun(kubectl("get", "pods", "-n", "demo")...)
		p.stop() // delivers every event spooled for stdout
		events = append(events, p.auditEvents()...)
		p = startJitproxy(t, cfg, state, out)
		if got := p.mustCLI("grant", "show", id, "--as", "dev"); !strings.Contains(got, "ACTIVE") {
			t.Errorf("after restart: %s", got)
		}
		if got := ag.mustRun(kubectl("get", "pods", "-n", "demo")...); !strings.Contains(got, "web") {
			t.Errorf("kubectl after restart:\n%s", got)
		}
		_, subject := c.mintedToken(t, id)
		p.mustCLI("grant", "revoke", id, "--as", "dev")
		waitUntil(t, "the restarted jitproxy to reclaim the grant's Vault objects", 20*time.Second, func() bool { return len(c.vaultObjects(t, subject)) == 0 })
	})

	t.Run("audit stream", func(t *testing.T) {
		types := map[string]int{}
		for _, e := range append(events, p.settledAuditEvents()...) {
			types[e["type"].(string)]++
		}
		for _, typ := range []string{"session.created", "grant.requested", "grant.approved", "grant.activated", "grant.revoked", "grant.expired", "credential.minted", "credential.released", "request"} {
			if types[typ] == 0 {
				t.Errorf("no %s event; got %v", typ, types)
			}
		}
	})

	p.stop()
	t.Run("secrets are nowhere they do not belong", func(t *testing.T) {
		secrets := map[string]string{
			"the agent's token":         agentCanary,
			"the apiserver admin token": c.env.Kube.AdminToken,
			"jitproxy's own token":      c.env.Kube.JitproxyToken,
			"Vault's cluster token":     c.env.Kube.VaultToken,
			"the Vault root token":      c.env.Vault.RootToken,
			"carol's OIDC token":        idp.carolOIDC,
			"the runner's SA token":     idp.runnerSA,
		}
		for i, tok := range c.minted {
			secrets[fmt.Sprintf("minted token %d", i)] = tok
		}
		if len(c.minted) < 6 {
			t.Errorf("only %d minted tokens collected", len(c.minted))
		}
		for what, s := range secrets {
			if got := out.containing(s); len(got) != 0 {
				t.Errorf("%s appears in %v", what, got)
			}
		}
	})
}
