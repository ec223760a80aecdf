package jit

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

func TestParseIdentity(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    IdentityRef
		wantErr string
	}{
		{name: "token", in: "token:alice-laptop", want: IdentityRef{Method: AuthToken, Subject: "alice-laptop"}},
		{name: "oidc email", in: "oidc:corp:alice@example.com", want: IdentityRef{Method: AuthOIDC, Source: "corp", Subject: "alice@example.com"}},
		{name: "oidc subject with colons", in: "oidc:corp:urn:x:1", want: IdentityRef{Method: AuthOIDC, Source: "corp", Subject: "urn:x:1"}},
		{name: "serviceaccount", in: "serviceaccount:demo:ci/runner.v2", want: IdentityRef{Method: AuthServiceAccount, Source: "demo", Subject: "ci/runner.v2"}},
		{name: "unknown kind", in: "ldap:corp:alice", wantErr: `unknown kind "ldap"`},
		{name: "no kind", in: "alice", wantErr: "want token:NAME"},
		{name: "empty token", in: "token:", wantErr: "want token:NAME"},
		{name: "oidc without subject", in: "oidc:corp", wantErr: "want oidc:SOURCE:SUBJECT"},
		{name: "oidc empty source", in: "oidc::alice", wantErr: "want oidc:SOURCE:SUBJECT"},
		{name: "serviceaccount without namespace", in: "serviceaccount:demo:runner", wantErr: "want serviceaccount:TARGET:NAMESPACE/NAME"},
		{name: "serviceaccount bad namespace", in: "serviceaccount:demo:CI/runner", wantErr: "want serviceaccount:TARGET:NAMESPACE/NAME"},
		{name: "serviceaccount with colon", in: "serviceaccount:demo:ci/run:ner", wantErr: "want serviceaccount:TARGET:NAMESPACE/NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseIdentity(tt.in)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ParseIdentity(%q) (-want +got):\n%s", tt.in, diff)
			}
			if gotErr := fmt.Sprint(err); (tt.wantErr == "") != (err == nil) || !strings.Contains(gotErr, tt.wantErr) {
				t.Errorf("ParseIdentity(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
		})
	}
}

func FuzzParseIdentity(f *testing.F) {
	for _, s := range []string{"token:a", "oidc:corp:alice@example.com", "serviceaccount:demo:ci/runner", "oidc::", "x", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := ParseIdentity(s)
		if err != nil {
			return
		}
		// A parsed reference prints back to what was parsed, and parses again to itself.
		if ref.String() != s {
			t.Fatalf("ParseIdentity(%q).String() = %q", s, ref.String())
		}
		again, err := ParseIdentity(ref.String())
		if err != nil || again != ref {
			t.Fatalf("reparse of %q: %+v %v", s, again, err)
		}
	})
}

var testSources = IdentitySources{Tokens: []string{"alice-laptop", "carol", "ci"}, OIDC: []string{"corp"}, ServiceAccounts: []string{"demo"}}

func TestNewUsers(t *testing.T) {
	tests := []struct {
		name    string
		users   []User
		wantErr []string
	}{
		{name: "valid", users: []User{
			{Name: "alice", Groups: []string{"sre"}, Identities: []string{"token:alice-laptop", "oidc:corp:alice@example.com"}},
			{Name: "ci", Groups: []string{"jitproxy:runners"}, Identities: []string{"serviceaccount:demo:ci/runner"}},
		}},
		{name: "identity mapped twice", users: []User{
			{Name: "alice", Identities: []string{"oidc:corp:alice@example.com"}},
			{Name: "mallory", Identities: []string{"oidc:corp:alice@example.com"}},
		}, wantErr: []string{`identity "oidc:corp:alice@example.com" is mapped to both user "alice" and user "mallory"`}},
		{name: "unknown prefix, unknown sources, name twice", users: []User{
			{Name: "alice", Identities: []string{"ldap:corp:alice", "oidc:google:alice", "serviceaccount:prod:ci/runner", "token:nobody"}},
			{Name: "alice", Identities: []string{"token:carol"}},
			{Name: "", Identities: []string{"token:ci"}},
			{Name: "rule:x", Identities: []string{"token:ci"}},
			{Name: "bob"},
		}, wantErr: []string{
			`unknown kind "ldap"`, `no OIDC provider "google"`, `target "prod" does not review ServiceAccount tokens`,
			`no static identity "nobody"`, `user "alice" is defined twice`, "user 2: name is required",
			`user "rule:x": a name may not start with rule:`, `user "bob": list at least one identity`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewUsers(tt.users, testSources)
			if (err == nil) != (len(tt.wantErr) == 0) {
				t.Fatalf("NewUsers error = %v, want %q", err, tt.wantErr)
			}
			for _, want := range tt.wantErr {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("NewUsers error without %q:\n%v", want, err)
				}
			}
		})
	}
}

func TestUsersResolve(t *testing.T) {
	users, err := NewUsers([]User{
		{Name: "alice", Groups: []string{"sre"}, Identities: []string{"token:alice-laptop", "oidc:corp:alice@example.com"}},
		{Name: "carol", Groups: []string{"developers"}, Identities: []string{"oidc:corp:carol@example.com"}},
		{Name: "ci", Groups: []string{"jitproxy:runners"}, Identities: []string{"serviceaccount:demo:ci/runner"}},
	}, testSources)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		ref      string
		asserted []string
		want     Principal
		wantOK   bool
	}{
		{name: "mapped token, groups of both", ref: "token:alice-laptop", asserted: []string{"laptops", "sre"},
			want: Principal{Name: "alice", Groups: []string{"sre", "laptops"}, AuthMethod: AuthToken, Identity: "token:alice-laptop"}, wantOK: true},
		{name: "mapped oidc, provider groups added", ref: "oidc:corp:alice@example.com", asserted: []string{"corp:eng"},
			want: Principal{Name: "alice", Groups: []string{"sre", "corp:eng"}, AuthMethod: AuthOIDC, Identity: "oidc:corp:alice@example.com"}, wantOK: true},
		{name: "token named as a user joins it", ref: "token:carol", asserted: []string{"sre"},
			want: Principal{Name: "carol", Groups: []string{"developers", "sre"}, AuthMethod: AuthToken, Identity: "token:carol"}, wantOK: true},
		{name: "unmapped token is its own user", ref: "token:bob", asserted: []string{"sre"},
			want: Principal{Name: "bob", Groups: []string{"sre"}, AuthMethod: AuthToken, Identity: "token:bob"}, wantOK: true},
		{name: "serviceaccount", ref: "serviceaccount:demo:ci/runner",
			want: Principal{Name: "ci", Groups: []string{"jitproxy:runners"}, AuthMethod: AuthServiceAccount, Identity: "serviceaccount:demo:ci/runner"}, wantOK: true},
		{name: "unmapped oidc", ref: "oidc:corp:bob@example.com"},
		{name: "unmapped serviceaccount", ref: "serviceaccount:demo:ci/other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ref, err := ParseIdentity(tt.ref)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := users.Resolve(ref, tt.asserted)
			if diff := cmp.Diff(tt.want, got); diff != "" || ok != tt.wantOK {
				t.Errorf("Resolve(%s) ok %v (-want +got):\n%s", tt.ref, ok, diff)
			}
		})
	}
	for name, want := range map[string]bool{"alice": true, "alice-laptop": true, "jitproxy": true, "rule:x": true, "bob@example.com": false} {
		if got := users.Taken(name); got != want {
			t.Errorf("Taken(%q) = %v, want %v", name, got, want)
		}
	}
}

// verifierFunc is a TokenVerifier, standing in for an OIDC provider.
type verifierFunc func(ctx context.Context, token secret.Value) (Principal, error)

func (f verifierFunc) VerifyToken(ctx context.Context, token secret.Value) (Principal, error) {
	return f(ctx, token)
}

// TestSelfApprovalAcrossIdentities: carol requests with her static token
// and cannot approve with her OIDC token; the request and the refusal are
// audited with the identity each used.
func TestSelfApprovalAcrossIdentities(t *testing.T) {
	f := newFixture(t)
	users, err := NewUsers([]User{
		{Name: "carol", Groups: []string{"developers"}, Identities: []string{"token:carol-laptop", "oidc:corp:carol@example.com"}},
		{Name: "dave", Identities: []string{"oidc:corp:dave@example.com"}},
	}, IdentitySources{Tokens: []string{"carol-laptop", "bob"}, OIDC: []string{"corp"}})
	if err != nil {
		t.Fatal(err)
	}
	ids, err := NewIdentities([]Identity{
		{Name: "carol-laptop", Token: "carol-token-0123456789"},
		{Name: "bob", Groups: []string{"sre"}, Token: "bob-token-0123456789abc"},
	}, users)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Identities = ids
	const iss = "https://idp.example.com"
	// The OIDC provider's tokens, as a verifier would map them: the
	// provider asserts group sre for both.
	idp := verifierFunc(func(_ context.Context, tok secret.Value) (Principal, error) {
		email, _ := strings.CutPrefix(tok.Reveal(), "verified-")
		p, ok := users.Resolve(IdentityRef{Method: AuthOIDC, Source: "corp", Subject: email}, []string{"sre"})
		if !ok {
			return Principal{}, ErrUnauthenticated
		}
		return p, nil
	})
	api := NewAPI(f.svc, APIConfig{ProxyURL: &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}, Issuers: map[string]TokenVerifier{
		iss: verifierFunc(func(ctx context.Context, tok secret.Value) (Principal, error) {
			// The fake JWT's signature part carries the verified email.
			parts := strings.Split(tok.Reveal(), ".")
			return idp(ctx, secret.Value("verified-"+parts[2]+"@example.com"))
		}),
	}})
	srv := newServer(t, api)
	oidcToken := func(name string) string { return "Bearer " + fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"`+iss+`"}`) + name }

	status, out := call(t, srv, "POST", "/v1/grants", "Bearer carol-token-0123456789", `{"policy":"editor","namespace":"demo","reason":"r"}`)
	if status != 201 || out["user"] != "carol" {
		t.Fatalf("carol's request with her static token: %d %v", status, out)
	}
	id := out["id"].(string)
	status, out = call(t, srv, "POST", "/v1/grants/"+id+"/approve", oidcToken("carol"), `{}`)
	if status != 403 || !strings.Contains(fmt.Sprint(out["error"]), "carol cannot approve or deny their own request") {
		t.Errorf("carol approving with her OIDC token = %d %v, want 403", status, out)
	}
	status, out = call(t, srv, "POST", "/v1/grants/"+id+"/approve", oidcToken("dave"), `{}`)
	if status != 200 || out["state"] != "PENDING" {
		t.Errorf("dave approving with his OIDC token (group sre from the provider) = %d %v", status, out)
	}
	status, out = call(t, srv, "POST", "/v1/grants/"+id+"/approve", oidcToken("eve"), `{}`)
	if status != 401 {
		t.Errorf("an unmapped OIDC user = %d %v, want 401", status, out)
	}

	var actors []audit.Actor
	for _, e := range f.audit.Events() {
		if e.Actor != nil && (e.Type == audit.TypeGrantRequested || e.Type == audit.TypeGrantApproved) {
			actors = append(actors, *e.Actor)
		}
	}
	want := []audit.Actor{
		{Name: "carol", Groups: []string{"developers"}, AuthMethod: AuthToken, Identity: "token:carol-laptop"},
		{Name: "dave", Groups: []string{"sre"}, AuthMethod: AuthOIDC, Identity: "oidc:corp:dave@example.com"},
	}
	if diff := cmp.Diff(want, actors); diff != "" {
		t.Errorf("audited actors (-want +got):\n%s", diff)
	}
}
