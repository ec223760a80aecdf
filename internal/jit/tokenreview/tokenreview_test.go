package tokenreview

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	authnclient "k8s.io/client-go/kubernetes/typed/authentication/v1"
	"k8s.io/client-go/rest"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// fakeReviews is a cluster that knows some tokens, recording each review.
type fakeReviews struct {
	mu      sync.Mutex
	users   map[string]string // token → username
	err     error
	reviews []authnv1.TokenReviewSpec
}

func (f *fakeReviews) Create(_ context.Context, r *authnv1.TokenReview, _ metav1.CreateOptions) (*authnv1.TokenReview, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reviews = append(f.reviews, r.Spec)
	if f.err != nil {
		return nil, f.err
	}
	out := r.DeepCopy()
	if u, ok := f.users[r.Spec.Token]; ok {
		out.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: u, Groups: []string{"system:serviceaccounts"}}, Audiences: r.Spec.Audiences}
	} else {
		out.Status = authnv1.TokenReviewStatus{Error: "invalid bearer token"}
	}
	return out, nil
}

func (f *fakeReviews) count() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.reviews) }

func jwt(exp time.Time) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"RS256"}`)) + "." + enc(fmt.Appendf(nil, `{"iss":"https://kubernetes.default.svc","exp":%d}`, exp.Unix())) + ".sig"
}

func testUsers(t *testing.T) *jit.Users {
	t.Helper()
	users, err := jit.NewUsers([]jit.User{
		{Name: "ci-runner", Groups: []string{"jitproxy:runners"}, Identities: []string{"serviceaccount:demo:ci/runner"}},
	}, jit.IdentitySources{ServiceAccounts: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	return users
}

func TestVerifyToken(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	runnerTok, strangerTok, userTok := jwt(now.Add(time.Hour)), jwt(now.Add(time.Hour).Add(time.Second)), jwt(now.Add(2*time.Hour))
	tests := []struct {
		name    string
		token   string
		err     error
		want    jit.Principal
		wantErr error
		wantMsg string
	}{
		{name: "mapped ServiceAccount", token: runnerTok,
			want: jit.Principal{Name: "ci-runner", Groups: []string{"jitproxy:runners"}, AuthMethod: jit.AuthServiceAccount, Identity: "serviceaccount:demo:ci/runner"}},
		{name: "unmapped ServiceAccount", token: strangerTok, wantErr: jit.ErrUnauthenticated, wantMsg: "identity serviceaccount:demo:ci/stranger is not mapped"},
		{name: "not a ServiceAccount", token: userTok, wantErr: jit.ErrUnauthenticated, wantMsg: "is not a ServiceAccount's"},
		{name: "bogus", token: jwt(now), wantErr: jit.ErrUnauthenticated, wantMsg: "does not accept the token for audience jitproxy"},
		{name: "apiserver unreachable fails closed", token: runnerTok, err: errors.New("connection refused"), wantErr: jit.ErrAuthUnavailable, wantMsg: "cannot review the token now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeReviews{err: tt.err, users: map[string]string{
				runnerTok: "system:serviceaccount:ci:runner", strangerTok: "system:serviceaccount:ci:stranger", userTok: "alice",
			}}
			a, err := New(Config{Target: "demo", Reviews: f, Users: testUsers(t), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			got, err := a.VerifyToken(t.Context(), secret.Value(tt.token))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("principal (-want +got):\n%s", diff)
			}
			if !errors.Is(err, tt.wantErr) || (err != nil && !strings.Contains(err.Error(), tt.wantMsg)) || (err != nil && strings.Contains(err.Error(), tt.token)) {
				t.Errorf("error %v, want %v with %q and without the token", err, tt.wantErr, tt.wantMsg)
			}
			if diff := cmp.Diff([]authnv1.TokenReviewSpec{{Token: tt.token, Audiences: []string{"jitproxy"}}}, f.reviews); diff != "" {
				t.Errorf("reviews (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCache: a positive review is reused for CacheTTL, never past the
// token's exp, keyed by its digest; a negative one is not.
func TestCache(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	clock := now
	long, short := jwt(now.Add(time.Hour)), jwt(now.Add(20*time.Second))
	f := &fakeReviews{users: map[string]string{long: "system:serviceaccount:ci:runner", short: "system:serviceaccount:ci:runner"}}
	a, err := New(Config{Target: "demo", Reviews: f, Users: testUsers(t), CacheTTL: time.Minute, Now: func() time.Time { return clock }})
	if err != nil {
		t.Fatal(err)
	}
	verify := func(tok string) {
		t.Helper()
		a.VerifyToken(t.Context(), secret.Value(tok))
	}
	verify(long)
	verify(long)
	verify(short)
	verify(short)
	verify("not-a-jwt")
	verify("not-a-jwt")
	if got := f.count(); got != 4 {
		t.Errorf("%d reviews, want 4: long and short once, the bogus token twice", got)
	}
	for k := range a.cache {
		if strings.Contains(string(k[:]), "runner") {
			t.Error("the cache key holds the token")
		}
	}
	clock = now.Add(30 * time.Second) // past short's exp, within the TTL
	verify(long)
	verify(short)
	if got := f.count(); got != 5 {
		t.Errorf("%d reviews, want 5: short again, past its exp", got)
	}
	clock = now.Add(61 * time.Second) // past the TTL
	verify(long)
	if got := f.count(); got != 6 {
		t.Errorf("%d reviews, want 6: long again, past the TTL", got)
	}
}

// TestAgainstAPIServer reviews through client-go against an httptest
// apiserver, as jitproxy does against a cluster.
func TestAgainstAPIServer(t *testing.T) {
	var got authnv1.TokenReview
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/apis/authentication.k8s.io/v1/tokenreviews" || r.Header.Get("Authorization") != "Bearer jitproxy-own-token" {
			http.Error(w, "unexpected "+r.Method+" "+r.URL.Path, http.StatusForbidden)
			return
		}
		json.NewDecoder(r.Body).Decode(&got)
		got.Status = authnv1.TokenReviewStatus{Authenticated: true, User: authnv1.UserInfo{Username: "system:serviceaccount:ci:runner"}, Audiences: []string{"jitproxy"}}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(got)
	}))
	defer srv.Close()
	c, err := authnclient.NewForConfig(&rest.Config{Host: srv.URL, BearerToken: "jitproxy-own-token", ContentConfig: rest.ContentConfig{ContentType: "application/json"}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Target: "demo", Reviews: c.TokenReviews(), Users: testUsers(t)})
	if err != nil {
		t.Fatal(err)
	}
	p, err := a.VerifyToken(t.Context(), "runner-sa-token")
	if err != nil || p.Name != "ci-runner" {
		t.Fatalf("VerifyToken = %+v, %v", p, err)
	}
	if got.Spec.Token != "runner-sa-token" || !cmp.Equal(got.Spec.Audiences, []string{"jitproxy"}) {
		t.Errorf("the apiserver got %+v", got.Spec)
	}
	srv.Close()
	a.cache = map[[32]byte]cached{}
	if _, err := a.VerifyToken(t.Context(), "runner-sa-token"); !errors.Is(err, jit.ErrAuthUnavailable) {
		t.Errorf("apiserver gone: %v, want ErrAuthUnavailable", err)
	}
}
