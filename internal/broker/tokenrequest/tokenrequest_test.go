package tokenrequest

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/jitproxy/jitproxy/internal/broker"
)

// apiserver answers TokenRequests the way kube-apiserver does and records them.
type apiserver struct {
	mu    sync.Mutex
	paths []string
	specs []authenticationv1.TokenRequestSpec
	auth  []string
}

func (a *apiserver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var tr authenticationv1.TokenRequest
	if err := json.NewDecoder(r.Body).Decode(&tr); err != nil || r.Method != http.MethodPost {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	a.mu.Lock()
	a.paths = append(a.paths, r.URL.Path)
	a.specs = append(a.specs, tr.Spec)
	a.auth = append(a.auth, r.Header.Get("Authorization"))
	a.mu.Unlock()
	if strings.Contains(r.URL.Path, "/missing/") {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		w.Write([]byte(`{"kind":"Status","apiVersion":"v1","status":"Failure","message":"serviceaccounts \"missing\" not found","reason":"NotFound","code":404}`))
		return
	}
	tr.Status = authenticationv1.TokenRequestStatus{
		Token:               "minted-token",
		ExpirationTimestamp: metav1.NewTime(time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(tr)
}

func TestMint(t *testing.T) {
	now := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name     string
		req      broker.Request
		wantPath string
		wantSecs int64
		wantErr  string
	}{
		{
			name:     "grant namespace, grant lifetime",
			req:      broker.Request{Namespace: "demo", GrantExpiresAt: now.Add(30 * time.Minute), Options: map[string]string{"serviceAccount": "reader"}},
			wantPath: "/api/v1/namespaces/demo/serviceaccounts/reader/token", wantSecs: 1800,
		},
		{
			name:     "short grant gets the apiserver minimum",
			req:      broker.Request{Namespace: "demo", GrantExpiresAt: now.Add(time.Minute), Options: map[string]string{"serviceAccount": "reader"}},
			wantPath: "/api/v1/namespaces/demo/serviceaccounts/reader/token", wantSecs: 600,
		},
		{
			name:     "policy namespace wins",
			req:      broker.Request{Namespace: "demo", GrantExpiresAt: now.Add(48 * time.Hour), Options: map[string]string{"serviceAccount": "reader", "serviceAccountNamespace": "tools"}},
			wantPath: "/api/v1/namespaces/tools/serviceaccounts/reader/token", wantSecs: 86400,
		},
		{
			name:    "cluster-wide grant without namespace",
			req:     broker.Request{GrantExpiresAt: now.Add(time.Hour), Options: map[string]string{"serviceAccount": "reader"}},
			wantErr: "no service account namespace",
		},
		{
			name:    "apiserver refuses",
			req:     broker.Request{Namespace: "demo", GrantExpiresAt: now.Add(time.Hour), Options: map[string]string{"serviceAccount": "missing"}},
			wantErr: `request token for service account demo/missing: serviceaccounts "missing" not found`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &apiserver{}
			srv := httptest.NewTLSServer(api)
			defer srv.Close()
			cs, err := kubernetes.NewForConfig(&rest.Config{
				Host: srv.URL, BearerToken: "jitproxy-own-token",
				ContentConfig:   rest.ContentConfig{ContentType: "application/json"},
				TLSClientConfig: rest.TLSClientConfig{CAData: certPEM(t, srv)},
			})
			if err != nil {
				t.Fatal(err)
			}
			p, err := New(Config{Client: cs, Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			c, err := p.Mint(context.Background(), tt.req)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Mint() error = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Token.Reveal() != "minted-token" || !strings.HasPrefix(c.Subject, "system:serviceaccount:") {
				t.Errorf("Mint() = %+v", c)
			}
			if diff := cmp.Diff([]string{tt.wantPath}, api.paths); diff != "" {
				t.Errorf("paths (-want +got):\n%s", diff)
			}
			if got := *api.specs[0].ExpirationSeconds; got != tt.wantSecs {
				t.Errorf("expirationSeconds = %d, want %d", got, tt.wantSecs)
			}
			if api.auth[0] != "Bearer jitproxy-own-token" {
				t.Errorf("jitproxy authenticated with %q", api.auth[0])
			}
		})
	}
}

func TestValidateOptions(t *testing.T) {
	p, _ := New(Config{Client: kubernetes.New(nil)})
	tests := []struct {
		name    string
		opts    map[string]string
		wantErr string
	}{
		{name: "ok", opts: map[string]string{"serviceAccount": "reader"}},
		{name: "missing", opts: nil, wantErr: "serviceAccount is required"},
		{name: "unknown", opts: map[string]string{"serviceAccount": "a", "role": "x"}, wantErr: `unknown option "role"`},
		{name: "bad name", opts: map[string]string{"serviceAccount": "Not_OK"}, wantErr: `option serviceAccount "Not_OK"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := p.ValidateOptions(tt.opts)
			if (tt.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("ValidateOptions() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func certPEM(t *testing.T, srv *httptest.Server) []byte {
	t.Helper()
	var b strings.Builder
	for _, c := range srv.TLS.Certificates[0].Certificate {
		b.WriteString("-----BEGIN CERTIFICATE-----\n")
		b.WriteString(base64Lines(c))
		b.WriteString("-----END CERTIFICATE-----\n")
	}
	return []byte(b.String())
}
