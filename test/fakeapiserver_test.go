package test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/version"
	"k8s.io/client-go/kubernetes/scheme"
)

// fakeAPIServer stands in for kube-apiserver in the tests that must see
// exactly what jitproxy sends upstream (the canary test). It serves legacy
// discovery, TokenRequest for jitproxy's own token (minting the same token
// for every ServiceAccount), and pods in any namespace, for the minted token
// only; and it records every request's headers.
type fakeAPIServer struct {
	*httptest.Server
	ownToken    string // jitproxy's own credential, for TokenRequest
	mintedToken string // what TokenRequest answers

	mu       sync.Mutex
	requests []seenRequest
	mints    map[string]int // by TokenRequest path
}

type seenRequest struct {
	Method, Path string
	Header       http.Header
}

func startFakeAPIServer(t *testing.T, ownToken, mintedToken string) *fakeAPIServer {
	t.Helper()
	f := &fakeAPIServer{ownToken: ownToken, mintedToken: mintedToken}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPIServer) seen() []seenRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]seenRequest(nil), f.requests...)
}

func writeObj(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func (f *fakeAPIServer) serve(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.requests = append(f.requests, seenRequest{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone()})
	f.mu.Unlock()
	auth := r.Header.Get("Authorization")
	if strings.HasSuffix(r.URL.Path, "/token") && r.Method == http.MethodPost {
		if auth != "Bearer "+f.ownToken {
			writeObj(w, 401, metav1.Status{Status: "Failure", Reason: metav1.StatusReasonUnauthorized, Code: 401})
			return
		}
		body, _ := io.ReadAll(r.Body)
		obj, _, err := scheme.Codecs.UniversalDeserializer().Decode(body, nil, nil) // JSON or protobuf
		in, ok := obj.(*authenticationv1.TokenRequest)
		if err != nil || !ok || in.Spec.ExpirationSeconds == nil {
			writeObj(w, 400, metav1.Status{Status: "Failure", Reason: metav1.StatusReasonBadRequest, Code: 400})
			return
		}
		tr := *in
		f.mu.Lock()
		if f.mints == nil {
			f.mints = map[string]int{}
		}
		f.mints[r.URL.Path]++
		f.mu.Unlock()
		tr.TypeMeta = metav1.TypeMeta{Kind: "TokenRequest", APIVersion: "authentication.k8s.io/v1"}
		tr.Status = authenticationv1.TokenRequestStatus{
			Token:               f.mintedToken,
			ExpirationTimestamp: metav1.NewTime(time.Now().Add(time.Duration(*tr.Spec.ExpirationSeconds) * time.Second)),
		}
		writeObj(w, 201, tr)
		return
	}
	if auth != "Bearer "+f.mintedToken {
		writeObj(w, 401, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Message: "fake apiserver: wrong token", Reason: metav1.StatusReasonUnauthorized, Code: 401})
		return
	}
	switch p := r.URL.Path; {
	case p == "/version":
		writeObj(w, 200, version.Info{Major: "1", Minor: "34", GitVersion: "v1.34.4-fake"})
	case p == "/api":
		writeObj(w, 200, metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"},
			ServerAddressByClientCIDRs: []metav1.ServerAddressByClientCIDR{{ClientCIDR: "0.0.0.0/0", ServerAddress: "127.0.0.1"}}})
	case p == "/apis":
		writeObj(w, 200, metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}, Groups: []metav1.APIGroup{}})
	case p == "/api/v1":
		writeObj(w, 200, metav1.APIResourceList{
			TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
			GroupVersion: "v1",
			APIResources: []metav1.APIResource{
				{Name: "pods", SingularName: "pod", Namespaced: true, Kind: "Pod", ShortNames: []string{"po"},
					Verbs: metav1.Verbs{"create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"}},
				{Name: "pods/log", Namespaced: true, Kind: "Pod", Verbs: metav1.Verbs{"get"}},
			},
		})
	case strings.HasPrefix(p, "/api/v1/namespaces/") && strings.HasSuffix(p, "/pods") && r.Method == http.MethodGet:
		ns := strings.Split(p, "/")[4]
		writeObj(w, 200, corev1.PodList{
			TypeMeta: metav1.TypeMeta{Kind: "PodList", APIVersion: "v1"},
			Items: []corev1.Pod{{
				TypeMeta:   metav1.TypeMeta{Kind: "Pod", APIVersion: "v1"},
				ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: ns, CreationTimestamp: metav1.Now()},
				Status:     corev1.PodStatus{Phase: corev1.PodRunning},
			}},
		})
	case strings.HasPrefix(p, "/api/v1/namespaces/") && r.Method == http.MethodDelete:
		writeObj(w, 200, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Success"})
	default:
		writeObj(w, 404, metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: "Failure", Reason: metav1.StatusReasonNotFound, Code: 404})
	}
}
