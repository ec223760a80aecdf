package vault

import (
	"cmp"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"
	vaultapi "github.com/hashicorp/vault/api"

	"github.com/jitproxy/jitproxy/internal/broker"
)

// fakeVault answers the few endpoints the provider uses, and records calls.
type fakeVault struct {
	mu      sync.Mutex
	calls   []string
	bodies  []map[string]any
	tokens  []string
	noToken bool
	deny    bool
	// forgotten tokens are refused, as by a Vault that lost its storage
	// (a dev server restarted); loginToken, if set, is what a login issues.
	forgotten  map[string]bool
	loginToken string
	// answers are the bodies of 200 answers to other paths, by path
	// (/v1/...); a path answered with "" gets 204.
	answers map[string]string
}

func (f *fakeVault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body map[string]any
	json.NewDecoder(r.Body).Decode(&body)
	f.mu.Lock()
	f.calls = append(f.calls, r.Method+" "+r.URL.Path)
	f.bodies = append(f.bodies, body)
	f.tokens = append(f.tokens, r.Header.Get("X-Vault-Token"))
	deny, noToken := f.deny, f.noToken
	forgotten := f.forgotten[r.Header.Get("X-Vault-Token")] && r.URL.Path != "/v1/auth/kubernetes/login"
	loginToken := cmp.Or(f.loginToken, "s.login-token")
	answer, answered := f.answers[r.URL.Path]
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	switch {
	case deny, forgotten:
		w.WriteHeader(403)
		w.Write([]byte(`{"errors":["permission denied"]}`))
	case r.URL.Path == "/v1/auth/kubernetes/login":
		w.Write([]byte(`{"auth":{"client_token":"` + loginToken + `","lease_duration":600,"renewable":true}}`))
	case r.URL.Path == "/v1/auth/token/lookup-self":
		w.Write([]byte(`{"data":{"ttl":0,"renewable":false}}`))
	case strings.HasPrefix(r.URL.Path, "/v1/kubernetes/creds/"):
		tok := `"service_account_token":"sa-token",`
		if noToken {
			tok = ""
		}
		w.Write([]byte(`{"lease_id":"kubernetes/creds/pod-reader/abc","lease_duration":1800,"data":{` + tok + `"service_account_name":"v-token-pod-reader-x","service_account_namespace":"demo"}}`))
	case r.URL.Path == "/v1/sys/leases/revoke":
		w.WriteHeader(204)
	case answered && answer == "":
		w.WriteHeader(204)
	case answered:
		w.Write([]byte(answer))
	default:
		w.WriteHeader(404)
		w.Write([]byte(`{"errors":["no handler"]}`))
	}
}

func (f *fakeVault) log() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

type clock struct{ t time.Time }

func (c *clock) Now() time.Time { return c.t }

// newClient returns a Vault client of f with a static token, and a login
// with the kubernetes auth method if login is set.
func newClient(t *testing.T, f *fakeVault, login bool) (*vaultapi.Client, LoginFunc) {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	cfg := vaultapi.DefaultConfig()
	cfg.Address = srv.URL
	c, err := vaultapi.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.SetToken("s.static-token")
	if !login {
		return c, nil
	}
	return c, func(ctx context.Context, c *vaultapi.Client) (*vaultapi.Secret, error) {
		return c.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": "jitproxy", "jwt": "sa-jwt"})
	}
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)} }

func newProvider(t *testing.T, f *fakeVault, login bool) (*Provider, *clock) {
	t.Helper()
	c, lf := newClient(t, f, login)
	clk := newClock()
	p, err := New(Config{Client: c, Login: lf, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return p, clk
}

func TestMintAndRelease(t *testing.T) {
	f := &fakeVault{}
	p, clk := newProvider(t, f, false)
	ctx := context.Background()
	c, err := p.Mint(ctx, broker.Request{
		GrantID: "g-1", Namespace: "demo", GrantExpiresAt: clk.t.Add(30 * time.Minute),
		Options: map[string]string{"role": "pod-reader"},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := broker.Credential{Token: "sa-token", ExpiresAt: clk.t.Add(30 * time.Minute), Subject: "system:serviceaccount:demo:v-token-pod-reader-x", LeaseID: "kubernetes/creds/pod-reader/abc"}
	if diff := gocmp.Diff(want, c); diff != "" {
		t.Errorf("Mint() (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff(map[string]any{"kubernetes_namespace": "demo", "ttl": "1800s"}, f.bodies[1]); diff != "" {
		t.Errorf("creds request body (-want +got):\n%s", diff)
	}
	if err := p.Release(ctx, c); err != nil {
		t.Fatal(err)
	}
	wantCalls := []string{"GET /v1/auth/token/lookup-self", "PUT /v1/kubernetes/creds/pod-reader", "PUT /v1/sys/leases/revoke"}
	if diff := gocmp.Diff(wantCalls, f.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if f.bodies[2]["lease_id"] != "kubernetes/creds/pod-reader/abc" {
		t.Errorf("revoke body %v", f.bodies[2])
	}
}

func TestLeaseTTL(t *testing.T) {
	tests := []struct {
		name      string
		remaining time.Duration
		opts      map[string]string
		want      map[string]any
	}{
		{name: "short grant asks the minimum", remaining: time.Minute, opts: map[string]string{"role": "r"}, want: map[string]any{"kubernetes_namespace": "demo", "ttl": "600s"}},
		{name: "long grant is capped", remaining: 72 * time.Hour, opts: map[string]string{"role": "r"}, want: map[string]any{"kubernetes_namespace": "demo", "ttl": "86400s"}},
		{name: "policy namespace and cluster binding", remaining: time.Hour, opts: map[string]string{"role": "r", "namespace": "tools", "clusterRoleBinding": "true"}, want: map[string]any{"kubernetes_namespace": "tools", "ttl": "3600s", "cluster_role_binding": true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeVault{}
			p, clk := newProvider(t, f, false)
			if _, err := p.Mint(context.Background(), broker.Request{Namespace: "demo", GrantExpiresAt: clk.t.Add(tt.remaining), Options: tt.opts}); err != nil {
				t.Fatal(err)
			}
			if diff := gocmp.Diff(tt.want, f.bodies[1]); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoginAndRelogin(t *testing.T) {
	f := &fakeVault{}
	p, clk := newProvider(t, f, true)
	ctx := context.Background()
	req := broker.Request{Namespace: "demo", GrantExpiresAt: clk.t.Add(time.Hour), Options: map[string]string{"role": "pod-reader"}}
	mint := func() {
		t.Helper()
		if _, err := p.Mint(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	mint()
	mint()
	clk.t = clk.t.Add(9*time.Minute + 30*time.Second) // the 10m login token is about to expire
	mint()
	f.mu.Lock()
	f.deny = true
	f.mu.Unlock()
	if _, err := p.Mint(ctx, req); err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Mint() with a revoked token = %v", err)
	}
	f.mu.Lock()
	f.deny = false
	f.mu.Unlock()
	mint() // logs in again after the denial
	want := []string{
		"PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader", "PUT /v1/kubernetes/creds/pod-reader",
		"PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader",
		"PUT /v1/kubernetes/creds/pod-reader", "PUT /v1/auth/kubernetes/login", // refused, and the login too
		"PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader",
	}
	if diff := gocmp.Diff(want, f.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if tok := f.tokens[1]; tok != "s.login-token" {
		t.Errorf("creds asked with token %q, want the login's", tok)
	}
}

// TestLoginAgainWhenVaultForgetsTheToken: a Vault that lost its storage (a
// dev server restarted, a restore from an old backup) refuses jitproxy's
// token although it has not expired. The call that meets the refusal logs
// in again and is made once more, so that no request fails for it.
func TestLoginAgainWhenVaultForgetsTheToken(t *testing.T) {
	f := &fakeVault{}
	p, clk := newProvider(t, f, true)
	ctx := context.Background()
	req := broker.Request{Namespace: "demo", GrantExpiresAt: clk.t.Add(time.Hour), Options: map[string]string{"role": "pod-reader"}}
	if _, err := p.Mint(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	f.forgotten = map[string]bool{"s.login-token": true}
	f.loginToken = "s.second-login-token"
	f.mu.Unlock()
	c, err := p.Mint(ctx, req)
	if err != nil {
		t.Fatalf("Mint() after Vault forgot the token: %v", err)
	}
	f.mu.Lock()
	f.forgotten["s.second-login-token"] = true
	f.loginToken = "s.third-login-token"
	f.mu.Unlock()
	if err := p.Release(ctx, c); err != nil {
		t.Fatalf("Release() after Vault forgot the token: %v", err)
	}
	want := []string{
		"PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader",
		"PUT /v1/kubernetes/creds/pod-reader", "PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader",
		"PUT /v1/sys/leases/revoke", "PUT /v1/auth/kubernetes/login", "PUT /v1/sys/leases/revoke",
	}
	if diff := gocmp.Diff(want, f.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"s.second-login-token", "s.third-login-token"}, []string{f.tokens[4], f.tokens[7]}); diff != "" {
		t.Errorf("tokens of the calls made again (-want +got):\n%s", diff)
	}
}

// TestDeniedAfterFreshLoginIsNotRetried: a refusal of a token just issued
// is a real denial (the Vault policy does not allow the path): one login,
// no loop.
func TestDeniedAfterFreshLoginIsNotRetried(t *testing.T) {
	f := &fakeVault{forgotten: map[string]bool{"s.login-token": true}}
	p, clk := newProvider(t, f, true)
	_, err := p.Mint(context.Background(), broker.Request{Namespace: "demo", GrantExpiresAt: clk.t.Add(time.Hour), Options: map[string]string{"role": "pod-reader"}})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Errorf("Mint() = %v, want permission denied", err)
	}
	if diff := gocmp.Diff([]string{"PUT /v1/auth/kubernetes/login", "PUT /v1/kubernetes/creds/pod-reader"}, f.log()); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestAnswerWithoutTokenRevokesTheLease(t *testing.T) {
	f := &fakeVault{noToken: true}
	p, clk := newProvider(t, f, false)
	_, err := p.Mint(context.Background(), broker.Request{Namespace: "demo", GrantExpiresAt: clk.t.Add(time.Hour), Options: map[string]string{"role": "r"}})
	if err == nil {
		t.Fatal("Mint() = nil error")
	}
	if calls := f.log(); calls[len(calls)-1] != "PUT /v1/sys/leases/revoke" {
		t.Errorf("calls %v: the lease was left behind", calls)
	}
}

func TestValidateOptions(t *testing.T) {
	p, _ := newProvider(t, &fakeVault{}, false)
	tests := []struct {
		opts    map[string]string
		wantErr string
	}{
		{opts: map[string]string{"role": "r"}},
		{opts: map[string]string{"role": "r", "namespace": "n", "clusterRoleBinding": "false"}},
		{opts: nil, wantErr: "option role is required"},
		{opts: map[string]string{"role": "r", "serviceAccount": "x"}, wantErr: `unknown option "serviceAccount"`},
		{opts: map[string]string{"role": "r", "clusterRoleBinding": "yes please"}, wantErr: "want true or false"},
	}
	for _, tt := range tests {
		err := p.ValidateOptions(tt.opts)
		if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
			t.Errorf("ValidateOptions(%v) = %v, want %q", tt.opts, err, tt.wantErr)
		}
	}
}
