package oidcauth

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/coreos/go-oidc/v3/oidc/oidctest"
	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// issuer is an httptest OIDC provider with a generated key.
type issuer struct {
	srv  *httptest.Server
	key  *ecdsa.PrivateKey
	down atomic.Bool
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	is := &issuer{key: key}
	s := &oidctest.Server{PublicKeys: []oidctest.PublicKey{{PublicKey: key.Public(), KeyID: "k1", Algorithm: oidc.ES256}}, Algorithms: []string{oidc.ES256}}
	is.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if is.down.Load() {
			http.Error(w, "down", http.StatusBadGateway)
			return
		}
		s.ServeHTTP(w, r)
	}))
	t.Cleanup(is.srv.Close)
	s.SetIssuer(is.srv.URL)
	return is
}

// token signs claims, with iss, aud jitproxy and exp in an hour unless
// claims set them.
func (is *issuer) token(claims map[string]any) string {
	c := map[string]any{"iss": is.srv.URL, "aud": "jitproxy", "exp": time.Now().Add(time.Hour).Unix()}
	for k, v := range claims {
		c[k] = v
	}
	var b strings.Builder
	b.WriteString("{")
	first := true
	for k, v := range c {
		if !first {
			b.WriteString(",")
		}
		first = false
		fmt.Fprintf(&b, "%q:", k)
		switch v := v.(type) {
		case string:
			fmt.Fprintf(&b, "%q", v)
		case []string:
			b.WriteString("[")
			for i, s := range v {
				if i > 0 {
					b.WriteString(",")
				}
				fmt.Fprintf(&b, "%q", s)
			}
			b.WriteString("]")
		default:
			fmt.Fprintf(&b, "%v", v)
		}
	}
	b.WriteString("}")
	return oidctest.SignIDToken(is.key, "k1", oidc.ES256, b.String())
}

func testUsers(t *testing.T) *jit.Users {
	t.Helper()
	users, err := jit.NewUsers([]jit.User{
		{Name: "alice", Groups: []string{"sre"}, Identities: []string{"oidc:corp:alice@example.com", "token:alice-laptop"}},
	}, jit.IdentitySources{Tokens: []string{"alice-laptop", "runner"}, OIDC: []string{"corp"}})
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestAuthenticateIDToken(t *testing.T) {
	is := newIssuer(t)
	other := newIssuer(t)
	tests := []struct {
		name    string
		cfg     func(*Config)
		token   func() string
		want    jit.Principal
		wantErr string
	}{
		{
			name: "mapped user, groups of the user and the provider's, prefixed",
			token: func() string {
				return is.token(map[string]any{"email": "alice@example.com", "groups": []string{"eng", "jitproxy:admins"}})
			},
			want: jit.Principal{Name: "alice", Groups: []string{"sre", "corp:eng", "corp:jitproxy:admins"}, AuthMethod: jit.AuthOIDC, Identity: "oidc:corp:alice@example.com"},
		},
		{
			name:  "one of several audiences",
			cfg:   func(c *Config) { c.ClientIDs = []string{"other", "cli"} },
			token: func() string { return is.token(map[string]any{"email": "alice@example.com", "aud": []string{"cli"}}) },
			want:  jit.Principal{Name: "alice", Groups: []string{"sre"}, AuthMethod: jit.AuthOIDC, Identity: "oidc:corp:alice@example.com"},
		},
		{
			name:    "wrong audience",
			token:   func() string { return is.token(map[string]any{"email": "alice@example.com", "aud": "someone-else"}) },
			wantErr: "its audience is none of this jitproxy's client IDs",
		},
		{
			name: "expired",
			token: func() string {
				return is.token(map[string]any{"email": "alice@example.com", "exp": time.Now().Add(-time.Minute).Unix()})
			},
			wantErr: "it expired at",
		},
		{
			name: "wrong issuer",
			token: func() string {
				return is.token(map[string]any{"email": "alice@example.com", "iss": "https://evil.example.com"})
			},
			wantErr: "its signature, issuer or form is not valid",
		},
		{
			name: "signed by another provider's key",
			token: func() string {
				return oidctest.SignIDToken(other.key, "k1", oidc.ES256, `{"iss":"`+is.srv.URL+`","aud":"jitproxy","email":"alice@example.com","exp":`+fmt.Sprint(time.Now().Add(time.Hour).Unix())+`}`)
			},
			wantErr: "its signature, issuer or form is not valid",
		},
		{
			name:    "unmapped subject refused by default",
			token:   func() string { return is.token(map[string]any{"email": "bob@example.com"}) },
			wantErr: "identity oidc:corp:bob@example.com is not mapped to a jitproxy user",
		},
		{
			name:  "unmapped subject by its claim",
			cfg:   func(c *Config) { c.UnmappedUsers = UnmappedClaim },
			token: func() string { return is.token(map[string]any{"email": "bob@example.com", "groups": "eng"}) },
			want:  jit.Principal{Name: "bob@example.com", Groups: []string{"corp:eng"}, AuthMethod: jit.AuthOIDC, Identity: "oidc:corp:bob@example.com"},
		},
		{
			name: "unmapped subject may not take a configured name",
			cfg: func(c *Config) {
				c.UnmappedUsers, c.UsernameClaim = UnmappedClaim, "preferred_username"
			},
			token:   func() string { return is.token(map[string]any{"preferred_username": "runner"}) },
			wantErr: "identity oidc:corp:runner is not mapped",
		},
		{
			name:    "unverified email",
			token:   func() string { return is.token(map[string]any{"email": "alice@example.com", "email_verified": false}) },
			wantErr: "its email is not verified",
		},
		{
			name:    "no username claim",
			token:   func() string { return is.token(map[string]any{"sub": "123"}) },
			wantErr: `it has no string claim "email"`,
		},
		{
			name:    "groups claim of numbers",
			token:   func() string { return is.token(map[string]any{"email": "alice@example.com", "groups": 7}) },
			wantErr: `claim "groups" is neither a string nor a list of strings`,
		},
		{
			name:    "required claim missing",
			cfg:     func(c *Config) { c.RequiredClaims = map[string]string{"hd": "example.com"} },
			token:   func() string { return is.token(map[string]any{"email": "alice@example.com"}) },
			wantErr: `claim "hd" does not have the required value`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{
				Name: "corp", Issuer: is.srv.URL, ClientIDs: []string{"jitproxy"}, UsernameClaim: "email",
				GroupsClaim: "groups", GroupsPrefix: "corp:", Users: testUsers(t),
			}
			if tt.cfg != nil {
				tt.cfg(&cfg)
			}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			raw := tt.token()
			got, err := a.AuthenticateIDToken(t.Context(), raw)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.wantErr != "" && (!errors.Is(err, jit.ErrUnauthenticated) || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("error %v, want ErrUnauthenticated with %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), raw):
				t.Errorf("the error holds the token: %v", err)
			}
		})
	}
}

// TestDiscoveryRetry: a provider down at start makes its tokens 503 (not
// 401, not a pass), retried at most every RetryInterval, and works once it
// is back.
func TestDiscoveryRetry(t *testing.T) {
	is := newIssuer(t)
	is.down.Store(true)
	now := time.Now()
	var clock atomic.Int64
	a, err := New(Config{
		Name: "corp", Issuer: is.srv.URL, ClientIDs: []string{"jitproxy"}, Users: testUsers(t), UsernameClaim: "email",
		Now: func() time.Time { return now.Add(time.Duration(clock.Load())) },
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Discover(t.Context()); err == nil {
		t.Fatal("Discover succeeded against a provider that is down")
	}
	tok := is.token(map[string]any{"email": "alice@example.com"})
	is.down.Store(false)
	// Within the retry interval, no new attempt.
	if _, err := a.AuthenticateIDToken(context.Background(), tok); !errors.Is(err, jit.ErrAuthUnavailable) {
		t.Fatalf("within the retry interval: %v, want ErrAuthUnavailable", err)
	}
	clock.Add(int64(11 * time.Second))
	p, err := a.AuthenticateIDToken(context.Background(), tok)
	if err != nil || p.Name != "alice" {
		t.Fatalf("after the provider came back: %+v %v", p, err)
	}
}

func TestNewConfigErrors(t *testing.T) {
	_, err := New(Config{UnmappedUsers: "maybe", ClientIDs: []string{""}})
	for _, want := range []string{"name is required", "issuer is required", "client_ids", `unmapped_users "maybe"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New error %v, want %q", err, want)
		}
	}
}
