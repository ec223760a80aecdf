package test

import (
	"context"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
)

// identities is what setupIdentities made: a person (carol) with an OIDC
// ID token from Vault's identity token issuer, and a runner with a
// ServiceAccount token of the real cluster.
type identities struct {
	dir       string
	issuer    string
	carolOIDC string // carol's ID token, a canary
	runnerSA  string // the runner's ServiceAccount token (audience jitproxy), a canary
	apiSA     string // the same ServiceAccount's token for the apiserver's audience
	c         *realCluster
}

// setupIdentities makes Vault an OIDC provider with carol as an entity
// (userpass), mints her ID token and the runner's ServiceAccount tokens,
// and sets the cluster's jitproxy configuration to accept both: carol's
// static token and her OIDC identity are one user.
func setupIdentities(t *testing.T, c *realCluster) *identities {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id := &identities{dir: filepath.Join(c.dir, "identities"), c: c}
	os.MkdirAll(id.dir, 0o700)
	var clientID string
	id.issuer, clientID, id.carolOIDC = vaultOIDCToken(ctx, t, c, "carol")
	for aud, dst := range map[string]*string{"jitproxy": &id.runnerSA, "": &id.apiSA} {
		args := []string{"create", "token", "jitproxy-runner", "-n", "ci", "--duration=1h"}
		if aud != "" {
			args = append(args, "--audience", aud)
		}
		out, err := c.env.Kubectl(ctx, c.kubectl, args...)
		if err != nil {
			t.Fatal(err)
		}
		*dst = strings.TrimSpace(out)
	}
	c.adminYAML = fmt.Sprintf(`  users:
    - {name: carol, identities: ["token:carol", "oidc:vault:carol"]}
    - {name: ci-runner, groups: ["jitproxy:runners"], identities: ["serviceaccount:demo:ci/jitproxy-runner"]}
  oidc:
    - {name: vault, issuer: %q, client_ids: [%q], username_claim: username, groups_claim: groups, groups_prefix: "vault:"}
  service_accounts:
    - {target: demo, issuer: "https://kubernetes.default.svc.cluster.local", audiences: [jitproxy]}
`, id.issuer, clientID)
	return id
}

// vaultOIDCToken configures Vault's identity token issuer (a key, a role
// whose template puts the entity's name in claim username) and returns the
// issuer, the role's client ID and an ID token of user, who logs in with
// userpass.
func vaultOIDCToken(ctx context.Context, t *testing.T, c *realCluster, user string) (issuer, clientID, token string) {
	t.Helper()
	cfg := vaultapi.DefaultConfig()
	cfg.Address = c.env.Vault.Addr
	cfg.Timeout = 30 * time.Second
	v, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	v.SetToken(c.env.Vault.RootToken)
	if err := v.Sys().EnableAuthWithOptionsWithContext(ctx, "userpass", &vaultapi.EnableAuthOptions{Type: "userpass"}); err != nil {
		t.Fatalf("enable userpass: %v", err)
	}
	auths, err := v.Sys().ListAuthWithContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	write := func(path string, data map[string]any) *vaultapi.Secret {
		t.Helper()
		s, err := v.Logical().WriteWithContext(ctx, path, data)
		if err != nil {
			t.Fatalf("vault write %s: %v", path, err)
		}
		return s
	}
	const password = "carol-vault-password-0123"
	if err := v.Sys().PutPolicyWithContext(ctx, "oidc-token", `path "identity/oidc/token/jitproxy" { capabilities = ["read"] }`); err != nil {
		t.Fatal(err)
	}
	write("auth/userpass/users/"+user, map[string]any{"password": password, "token_policies": "oidc-token"})
	entity := write("identity/entity", map[string]any{"name": user})
	write("identity/entity-alias", map[string]any{"name": user, "canonical_id": entity.Data["id"], "mount_accessor": auths["userpass/"].Accessor})
	write("identity/oidc/key/jitproxy", map[string]any{"allowed_client_ids": "*", "algorithm": "RS256"})
	write("identity/oidc/role/jitproxy", map[string]any{
		"key": "jitproxy", "ttl": "1h",
		"template": base64.StdEncoding.EncodeToString([]byte(`{"username": {{identity.entity.name}}, "groups": {{identity.entity.groups.names}}}`)),
	})
	role, err := v.Logical().ReadWithContext(ctx, "identity/oidc/role/jitproxy")
	if err != nil {
		t.Fatal(err)
	}
	clientID = role.Data["client_id"].(string)
	login, err := v.Logical().WriteWithContext(ctx, "auth/userpass/login/"+user, map[string]any{"password": password})
	if err != nil {
		t.Fatal(err)
	}
	userClient, err := v.Clone()
	if err != nil {
		t.Fatal(err)
	}
	userClient.SetToken(login.Auth.ClientToken)
	tok, err := userClient.Logical().ReadWithContext(ctx, "identity/oidc/token/jitproxy")
	if err != nil {
		t.Fatalf("read an ID token: %v", err)
	}
	disc, err := v.Logical().ReadWithContext(ctx, "identity/oidc/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	return disc.Data["issuer"].(string), clientID, tok.Data["token"].(string)
}

// test: the runner's ServiceAccount token creates a session, tokens for
// another audience or forged are refused; carol's OIDC token authenticates
// her, and she cannot approve with it what she requested with her static
// token.
func (id *identities) test(t *testing.T, p *proxyProc) {
	file := func(name, token string) string {
		path := filepath.Join(id.dir, name)
		if err := os.WriteFile(path, []byte(token), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	runner, apiAud, carol := file("runner.token", id.runnerSA), file("api.token", id.apiSA), file("carol.oidc", id.carolOIDC)
	enc := base64.RawURLEncoding.EncodeToString
	forged := file("forged.token", enc([]byte(`{"alg":"RS256","kid":"x"}`))+"."+
		enc([]byte(`{"iss":"https://kubernetes.default.svc.cluster.local","aud":["jitproxy"],"sub":"system:serviceaccount:ci:jitproxy-runner","exp":4102444800}`))+".c2ln")

	kubeconfig := filepath.Join(id.dir, "agent.kubeconfig")
	out := p.mustCLI("session", "create", "--token-file", runner, "--agent", "sa-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	if !strings.Contains(out, "session s-") {
		t.Errorf("session create with the runner's ServiceAccount token:\n%s", out)
	}
	for name, tok := range map[string]string{"the apiserver's audience": apiAud, "forged": forged} {
		if got, err := p.cli("session", "create", "--token-file", tok, "--agent", "x", "--user", "dev"); err == nil || !strings.Contains(got, "does not accept the token for audience jitproxy") {
			t.Errorf("a ServiceAccount token for %s: %v\n%s", name, err, got)
		}
	}
	if got := p.mustCLI("grant", "list", "--token-file", carol); !strings.Contains(got, "no grants") && !strings.Contains(got, "ID") {
		t.Logf("grant list as carol (OIDC):\n%s", got)
	}
	gid := grantID(t, p.mustCLI("grant", "request", "namespace-editor", "--as", "carol", "--namespace", "demo", "--reason", "one user, two identities"))
	defer p.cli("grant", "revoke", gid, "--as", "carol", "--reason", "test cleanup")
	if got, err := p.cli("grant", "approve", gid, "--token-file", carol); err == nil || !strings.Contains(got, "carol cannot approve or deny their own request") {
		t.Errorf("carol approving with her OIDC token what she requested with her static token: %v\n%s", err, got)
	}
	evs := p.settledAuditEvents()
	var seen []string
	for _, e := range evs {
		if a, ok := e["actor"].(map[string]any); ok && e["type"] != "admin.request" {
			seen = append(seen, fmt.Sprint(e["type"], " ", a["name"], " ", a["auth_method"], " ", a["identity"]))
		}
	}
	for _, want := range []string{
		"session.created ci-runner serviceaccount serviceaccount:demo:ci/jitproxy-runner",
		"grant.requested carol token token:carol",
	} {
		if !strings.Contains(strings.Join(seen, "\n"), want) {
			t.Errorf("no audit event %q in:\n%s", want, strings.Join(seen, "\n"))
		}
	}
	var oidcCall bool
	for _, e := range evs {
		if a, ok := e["actor"].(map[string]any); ok && a["identity"] == "oidc:vault:carol" && e["type"] == "admin.request" {
			oidcCall = true
		}
	}
	if !oidcCall {
		t.Error("no admin call audited with carol's OIDC identity")
	}
}
