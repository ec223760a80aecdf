package approvalpage

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// fakeIssuer is a small OpenID provider for the page's tests: its
// authorize endpoint signs in user at once (no form) and redirects back
// with a code; its token endpoint checks the client secret and the PKCE
// verifier and answers an RS256 ID token carrying the nonce. The tamper
// fields make it misbehave.
type fakeIssuer struct {
	*httptest.Server
	key *rsa.PrivateKey

	mu     sync.Mutex
	claims map[string]any // of the signed-in user
	codes  map[string]authRequest
	// tamper: a state other than the one asked for, a nonce other than
	// the one asked for.
	badState, badNonce bool
}

type authRequest struct{ nonce, challenge, redirect string }

const (
	testClientID     = "jitproxy-page"
	testClientSecret = "client-secret-0123456789"
)

func newFakeIssuer(t *testing.T) *fakeIssuer {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIssuer{key: key, codes: map[string]authRequest{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]any{
			"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token",
			"jwks_uri": f.URL + "/keys", "id_token_signing_alg_values_supported": []string{"RS256"},
			"response_types_supported": []string{"code"}, "subject_types_supported": []string{"public"},
		})
	})
	mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{{Key: &key.PublicKey, KeyID: "k1", Algorithm: "RS256", Use: "sig"}}})
	})
	mux.HandleFunc("GET /authorize", f.authorize)
	mux.HandleFunc("POST /token", f.token)
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// signIn makes the next authorizations sign in the user with claims.
func (f *fakeIssuer) signIn(claims map[string]any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.claims = claims
}

func (f *fakeIssuer) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("client_id") != testClientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" || q.Get("nonce") == "" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	code := rand.Text()
	f.codes[code] = authRequest{nonce: q.Get("nonce"), challenge: q.Get("code_challenge"), redirect: q.Get("redirect_uri")}
	state := q.Get("state")
	if f.badState {
		state = "forged-" + state
	}
	f.mu.Unlock()
	u, _ := url.Parse(q.Get("redirect_uri"))
	u.RawQuery = url.Values{"code": {code}, "state": {state}}.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}

func (f *fakeIssuer) token(w http.ResponseWriter, r *http.Request) {
	id, sec, ok := r.BasicAuth()
	if !ok {
		id, sec = r.PostFormValue("client_id"), r.PostFormValue("client_secret")
	}
	f.mu.Lock()
	req, found := f.codes[r.PostFormValue("code")]
	delete(f.codes, r.PostFormValue("code"))
	claims := map[string]any{}
	for k, v := range f.claims {
		claims[k] = v
	}
	badNonce := f.badNonce
	f.mu.Unlock()
	sum := sha256.Sum256([]byte(r.PostFormValue("code_verifier")))
	switch {
	case id != testClientID || sec != testClientSecret:
		w.WriteHeader(http.StatusUnauthorized)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_client"})
		return
	case !found || base64.RawURLEncoding.EncodeToString(sum[:]) != req.challenge || r.PostFormValue("redirect_uri") != req.redirect:
		w.WriteHeader(http.StatusBadRequest)
		json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant"})
		return
	}
	claims["iss"], claims["aud"], claims["nonce"] = f.URL, testClientID, req.nonce
	if badNonce {
		claims["nonce"] = "another-nonce"
	}
	now := time.Now()
	claims["iat"], claims["exp"] = now.Unix(), now.Add(time.Hour).Unix()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{"access_token": "at-" + rand.Text(), "token_type": "Bearer", "expires_in": 3600, "id_token": f.sign(claims)})
}

// sign returns claims as an RS256 JWT signed with the issuer's key.
func (f *fakeIssuer) sign(claims map[string]any) string {
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: f.key}, (&jose.SignerOptions{}).WithType("JWT").WithHeader("kid", "k1"))
	if err != nil {
		panic(err)
	}
	b, _ := json.Marshal(claims)
	jws, err := s.Sign(b)
	if err != nil {
		panic(err)
	}
	out, err := jws.CompactSerialize()
	if err != nil {
		panic(err)
	}
	return out
}
