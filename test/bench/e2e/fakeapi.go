package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
)

// Tokens of the fake apiserver: ownToken is jitproxy's own credential for
// TokenRequest, mintedToken what TokenRequest answers and what pod lists
// require, agentToken what the agent sends through jitproxy (replaced there).
const (
	ownToken    = "bench-own-token-5c2f"
	mintedToken = "bench-minted-token-3a8e"
	agentToken  = "bench-agent-token-7f1d"
)

// fakeAPIServer is the fake apiserver, counting the TokenRequests it
// answered.
type fakeAPIServer struct {
	*httptest.Server

	mu    sync.Mutex
	mints []time.Time // when each TokenRequest arrived
	conns int         // connections accepted
}

// connections returns the number of connections accepted so far.
func (f *fakeAPIServer) connections() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

// mintsSince returns the arrival times of the TokenRequests answered since
// t, oldest first.
func (f *fakeAPIServer) mintsSince(t time.Time) []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	i, _ := slices.BinarySearchFunc(f.mints, t, time.Time.Compare)
	return slices.Clone(f.mints[i:])
}

// newFakeAPIServer starts a TLS server that answers TokenRequest (for
// ownToken, any ServiceAccount, always with mintedToken) and
// GET /api/v1/namespaces/NS/pods (for mintedToken) with a one-pod PodList,
// encoded once. Anything else is a 404. The caller closes it.
func newFakeAPIServer() *fakeAPIServer {
	pods, _ := json.Marshal(corev1.PodList{
		TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
		Items: []corev1.Pod{{
			TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
			ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "demo", CreationTimestamp: metav1.Now()},
			Status:     corev1.PodStatus{Phase: corev1.PodRunning},
		}},
	})
	f := &fakeAPIServer{}
	f.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		auth := r.Header.Get("Authorization")
		p := r.URL.Path
		switch {
		case r.Method == http.MethodPost && strings.HasSuffix(p, "/token") && auth == "Bearer "+ownToken:
			f.mu.Lock()
			f.mints = append(f.mints, time.Now())
			f.mu.Unlock()
			mint(w, r)
		case r.Method == http.MethodGet && strings.HasPrefix(p, "/api/v1/namespaces/") && strings.HasSuffix(p, "/pods") && auth == "Bearer "+mintedToken:
			w.Header().Set("Content-Type", "application/json")
			w.Write(pods)
		default:
			http.Error(w, "fake apiserver: not found or wrong token", http.StatusNotFound)
		}
	}))
	f.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	// HTTP/2 as well, as a real apiserver: client-go then sends concurrent
	// TokenRequests over one connection.
	f.EnableHTTP2 = true
	f.StartTLS()
	return f
}

// mint answers a TokenRequest (JSON or protobuf) with mintedToken.
func mint(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil)
	in, ok := obj.(*authenticationv1.TokenRequest)
	if err != nil || !ok {
		http.Error(w, "fake apiserver: not a TokenRequest", http.StatusBadRequest)
		return
	}
	secs := int64(3600)
	if in.Spec.ExpirationSeconds != nil {
		secs = *in.Spec.ExpirationSeconds
	}
	tr := *in
	tr.TypeMeta = metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}
	tr.Status = authenticationv1.TokenRequestStatus{
		Token:               mintedToken,
		ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Duration(secs) * time.Second)),
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	json.NewEncoder(w).Encode(tr)
}
