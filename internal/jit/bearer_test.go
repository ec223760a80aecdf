package jit

import (
	"context"
	"encoding/base64"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/secret"
)

func fakeJWT(t testing.TB, header, claims string) string {
	t.Helper()
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(header)) + "." + enc([]byte(claims)) + "."
}

func newServer(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv
}

func TestUnverifiedIssuer(t *testing.T) {
	enc := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name   string
		token  string
		want   string
		wantOK bool
	}{
		{name: "jwt", token: fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"https://idp","sub":"a"}`) + "sig", want: "https://idp", wantOK: true},
		{name: "no signature", token: fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"https://idp"}`)},
		{name: "alg none", token: fakeJWT(t, `{"alg":"none"}`, `{"iss":"https://idp"}`) + "sig"},
		{name: "no iss", token: fakeJWT(t, `{"alg":"RS256"}`, `{"sub":"a"}`) + "sig"},
		{name: "iss not a string", token: fakeJWT(t, `{"alg":"RS256"}`, `{"iss":1}`) + "sig"},
		{name: "padded", token: enc([]byte(`{"alg":"RS256"}`)) + "." + base64.URLEncoding.EncodeToString([]byte(`{"iss":"https://idp1"}`)) + ".sig"},
		{name: "static token", token: "alice-token-0123456789"},
		{name: "four parts", token: fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"https://idp"}`) + "sig.more"},
		{name: "too long", token: fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"https://idp","x":"`+strings.Repeat("a", maxJWTLength)+`"}`) + "sig"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := UnverifiedIssuer(tt.token)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("UnverifiedIssuer = %q %v, want %q %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}

func FuzzUnverifiedIssuer(f *testing.F) {
	f.Add(fakeJWT(f, `{"alg":"RS256"}`, `{"iss":"https://idp","exp":1700000000}`) + "sig")
	f.Add("alice-token-0123456789")
	f.Add("a.b.c")
	f.Add("..")
	f.Fuzz(func(t *testing.T, token string) {
		iss, ok := UnverifiedIssuer(token)
		if ok && (iss == "" || len(token) > maxJWTLength || strings.Count(token, ".") != 2) {
			t.Fatalf("UnverifiedIssuer(%q) = %q, true", token, iss)
		}
		UnverifiedExpiry(token)
	})
}

func TestUnverifiedExpiry(t *testing.T) {
	got, ok := UnverifiedExpiry(fakeJWT(t, `{"alg":"RS256"}`, `{"exp":1700000000}`) + "sig")
	if !ok || !got.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("UnverifiedExpiry = %v %v", got, ok)
	}
	if _, ok := UnverifiedExpiry(fakeJWT(t, `{"alg":"RS256"}`, `{"exp":"soon"}`) + "sig"); ok {
		t.Error("a string exp was read")
	}
}

// TestAuthenticateBearerOrder: a static token is looked up first; a JWT
// goes to the verifier of the issuer it claims, and nowhere else; a JWT of
// an issuer not configured, or a verifier that cannot tell, is refused.
func TestAuthenticateBearerOrder(t *testing.T) {
	f := newFixture(t)
	ids, err := NewIdentities([]Identity{{Name: "alice", Groups: []string{"developers"}, Token: "alice-token-0123456789"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Identities = ids
	var asked []string
	verifier := func(name string, err error) TokenVerifier {
		return verifierFunc(func(context.Context, secret.Value) (Principal, error) {
			asked = append(asked, name)
			if err != nil {
				return Principal{}, err
			}
			return Principal{Name: name, Groups: []string{"developers"}, AuthMethod: AuthOIDC}, nil
		})
	}
	api := NewAPI(f.svc, APIConfig{ProxyURL: &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}, Issuers: map[string]TokenVerifier{
		"https://idp":     verifier("idp-user", nil),
		"https://cluster": verifier("cluster", errors.Join(ErrAuthUnavailable, errors.New("cluster down"))),
	}})
	srv := newServer(t, api)
	jwt := func(iss string) string { return "Bearer " + fakeJWT(t, `{"alg":"RS256"}`, `{"iss":"`+iss+`"}`) + "sig" }
	tests := []struct {
		name       string
		auth       string
		wantStatus int
		wantAsked  string
	}{
		{name: "static", auth: "Bearer alice-token-0123456789", wantStatus: 200},
		{name: "oidc", auth: jwt("https://idp"), wantStatus: 200, wantAsked: "idp-user"},
		{name: "unavailable cluster fails closed", auth: jwt("https://cluster"), wantStatus: 503, wantAsked: "cluster"},
		{name: "unknown issuer", auth: jwt("https://elsewhere"), wantStatus: 401},
		{name: "garbage", auth: "Bearer x.y.z", wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			asked = nil
			status, out := call(t, srv, "GET", "/v1/grants", tt.auth, "")
			if status != tt.wantStatus || strings.Join(asked, ",") != tt.wantAsked {
				t.Errorf("status %d (%v), asked %v; want %d, asked %q", status, out, asked, tt.wantStatus, tt.wantAsked)
			}
		})
	}
}
