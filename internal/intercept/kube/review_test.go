package kube

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	"k8s.io/client-go/kubernetes/scheme"

	"github.com/jitproxy/jitproxy/internal/access"
)

func TestIsSelfReview(t *testing.T) {
	p := New()
	tests := []struct {
		method, target string
		want           bool
	}{
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", true},
		{"POST", "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews", true},
		{"POST", "/apis/authorization.k8s.io/v1beta1/selfsubjectaccessreviews", true},
		// Someone else's access is the apiserver's to review, under a grant.
		{"POST", "/apis/authorization.k8s.io/v1/subjectaccessreviews", false},
		{"POST", "/apis/authorization.k8s.io/v1/namespaces/demo/localsubjectaccessreviews", false},
		{"GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", false},
		{"POST", "/apis/other.example.com/v1/selfsubjectaccessreviews", false},
		{"POST", "/api/v1/namespaces/demo/pods", false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.target, func(t *testing.T) {
			a, err := p.Classify(httptest.NewRequest(tt.method, "https://kubernetes.demo"+tt.target, nil), nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.IsSelfReview(a); got != tt.want {
				t.Errorf("IsSelfReview(%+v) = %v, want %v", a.Kubernetes, got, tt.want)
			}
		})
	}
}

// selfReviewAction is the Action of kubectl auth can-i's request.
func selfReviewAction(t *testing.T, resource, version string) access.Action {
	t.Helper()
	a, err := New().Classify(httptest.NewRequest("POST", "https://kubernetes.demo/apis/authorization.k8s.io/"+version+"/"+resource, nil), nil)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestSelfSubjectAccessReview(t *testing.T) {
	tests := []struct {
		name     string
		body     string
		answer   access.Answer
		wantAsk  access.Action
		wantStat authorizationv1.SubjectAccessReviewStatus
	}{
		{
			name:   "a namespaced resource, allowed",
			body:   `{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","metadata":{"creationTimestamp":null},"spec":{"resourceAttributes":{"namespace":"demo","verb":"list","resource":"pods"}},"status":{"allowed":false}}`,
			answer: access.Answer{Allowed: true, Reason: "jitproxy: permitted by grant g-1"},
			wantAsk: access.Action{Method: "GET", Kubernetes: &access.KubernetesAction{
				Verb: "list", ResourceRequest: true, Resource: "pods", Namespace: "demo",
			}},
			wantStat: authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "jitproxy: permitted by grant g-1"},
		},
		{
			name:   "with a version, group, name and subresource: the request's path",
			body:   `{"spec":{"resourceAttributes":{"namespace":"demo","verb":"create","group":"apps","version":"v1","resource":"deployments","subresource":"scale","name":"web"}}}`,
			answer: access.Answer{Reason: "no grant"},
			wantAsk: access.Action{Method: "POST", Path: "/apis/apps/v1/namespaces/demo/deployments/web/scale", Kubernetes: &access.KubernetesAction{
				Verb: "create", ResourceRequest: true, APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Subresource: "scale", Namespace: "demo", Name: "web",
			}},
			wantStat: authorizationv1.SubjectAccessReviewStatus{Reason: "no grant"},
		},
		{
			name:   "forbidden is denied",
			body:   `{"spec":{"resourceAttributes":{"namespace":"kube-system","verb":"create","resource":"pods","subresource":"exec","name":"x"}}}`,
			answer: access.Answer{Forbidden: true, Reason: "exec into kube-system is forbidden"},
			wantAsk: access.Action{Method: "POST", Kubernetes: &access.KubernetesAction{
				Verb: "create", ResourceRequest: true, Resource: "pods", Subresource: "exec", Namespace: "kube-system", Name: "x",
			}},
			wantStat: authorizationv1.SubjectAccessReviewStatus{Denied: true, Reason: "exec into kube-system is forbidden"},
		},
		{
			name:     "wildcards have no method and no path",
			body:     `{"spec":{"resourceAttributes":{"verb":"*","group":"*","resource":"*"}}}`,
			wantAsk:  access.Action{Kubernetes: &access.KubernetesAction{Verb: "*", ResourceRequest: true, APIGroup: "*", Resource: "*"}},
			wantStat: authorizationv1.SubjectAccessReviewStatus{},
		},
		{
			name:     "a non-resource URL",
			body:     `{"spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"}}}`,
			answer:   access.Answer{Allowed: true},
			wantAsk:  access.Action{Method: "GET", Path: "/healthz", Kubernetes: &access.KubernetesAction{Verb: "get"}},
			wantStat: authorizationv1.SubjectAccessReviewStatus{Allowed: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []access.Action
			can := func(a access.Action) (access.Answer, error) { asked = append(asked, a); return tt.answer, nil }
			rec := httptest.NewRecorder()
			err := New().SelfReview(rec, selfReviewAction(t, "selfsubjectaccessreviews", "v1"), "application/json", []byte(tt.body), can, noRules(t))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]access.Action{tt.wantAsk}, asked); diff != "" {
				t.Errorf("asked (-want +got):\n%s", diff)
			}
			got := decodeAnswer[authorizationv1.SelfSubjectAccessReview](t, rec)
			if got.Kind != "SelfSubjectAccessReview" || got.APIVersion != "authorization.k8s.io/v1" {
				t.Errorf("answered a %s %s", got.APIVersion, got.Kind)
			}
			if diff := cmp.Diff(tt.wantStat, got.Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			var sent authorizationv1.SelfSubjectAccessReview
			json.Unmarshal([]byte(tt.body), &sent)
			if diff := cmp.Diff(sent.Spec, got.Spec); diff != "" {
				t.Errorf("the spec was not given back as sent (-sent +got):\n%s", diff)
			}
		})
	}
}

// TestSelfReviewProtobuf: client-go's typed clients send built-in types as
// protobuf; the review is read the same.
func TestSelfReviewProtobuf(t *testing.T) {
	review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
		ResourceAttributes: &authorizationv1.ResourceAttributes{Namespace: "demo", Verb: "get", Resource: "pods", Name: "web"},
	}}
	review.SetGroupVersionKind(authorizationv1.SchemeGroupVersion.WithKind("SelfSubjectAccessReview"))
	var b bytes.Buffer
	if err := protobuf.NewSerializer(scheme.Scheme, scheme.Scheme).Encode(review, &b); err != nil {
		t.Fatal(err)
	}
	var asked access.Action
	can := func(a access.Action) (access.Answer, error) { asked = a; return access.Answer{Allowed: true}, nil }
	rec := httptest.NewRecorder()
	if err := New().SelfReview(rec, selfReviewAction(t, "selfsubjectaccessreviews", "v1"), protobufContentType, b.Bytes(), can, noRules(t)); err != nil {
		t.Fatal(err)
	}
	if k := asked.Kubernetes; k == nil || k.Verb != "get" || k.Resource != "pods" || k.Name != "web" || k.Namespace != "demo" {
		t.Errorf("asked %+v", k)
	}
	if got := decodeAnswer[authorizationv1.SelfSubjectAccessReview](t, rec); !got.Status.Allowed {
		t.Errorf("status %+v", got.Status)
	}
}

func TestSelfSubjectRulesReview(t *testing.T) {
	perms := []access.KubernetesPermission{
		{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}},
		{Verbs: []string{"patch"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}},
		{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/metrics"}},
	}
	var asked []string
	rules := func(ns string) []access.KubernetesPermission { asked = append(asked, ns); return perms }
	rec := httptest.NewRecorder()
	body := `{"kind":"SelfSubjectRulesReview","apiVersion":"authorization.k8s.io/v1","spec":{"namespace":"demo"}}`
	if err := New().SelfReview(rec, selfReviewAction(t, "selfsubjectrulesreviews", "v1"), "application/json", []byte(body), noCan(t), rules); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"demo"}, asked); diff != "" {
		t.Errorf("namespaces asked (-want +got):\n%s", diff)
	}
	got := decodeAnswer[authorizationv1.SelfSubjectRulesReview](t, rec)
	if got.Kind != "SelfSubjectRulesReview" || got.Spec.Namespace != "demo" {
		t.Errorf("answered %s for %q", got.Kind, got.Spec.Namespace)
	}
	want := authorizationv1.SubjectRulesReviewStatus{
		ResourceRules: []authorizationv1.ResourceRule{
			{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods", "pods/log"}},
			{Verbs: []string{"patch"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web"}},
		},
		NonResourceRules: []authorizationv1.NonResourceRule{{Verbs: []string{"get"}, NonResourceURLs: []string{"/healthz", "/metrics"}}},
		Incomplete:       true,
	}
	got.Status.EvaluationError = "" // prose
	if diff := cmp.Diff(want, got.Status); diff != "" {
		t.Errorf("status (-want +got):\n%s", diff)
	}
}

func TestSelfReviewRefusesMalformedReviews(t *testing.T) {
	tests := []struct {
		name, version, resource, ctype, body, want string
	}{
		{"both kinds of attributes", "v1", "selfsubjectaccessreviews", "application/json",
			`{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"},"nonResourceAttributes":{"verb":"get","path":"/x"}}}`, "exactly one of"},
		{"no attributes", "v1", "selfsubjectaccessreviews", "application/json", `{"spec":{}}`, "exactly one of"},
		{"no verb", "v1", "selfsubjectaccessreviews", "", `{"spec":{"resourceAttributes":{"resource":"pods"}}}`, "needs a verb and a resource"},
		{"a relative path", "v1", "selfsubjectaccessreviews", "", `{"spec":{"nonResourceAttributes":{"verb":"get","path":"healthz"}}}`, "absolute path"},
		{"not JSON", "v1", "selfsubjectaccessreviews", "application/json", `{"spec":`, "not valid JSON"},
		{"not protobuf", "v1", "selfsubjectrulesreviews", protobufContentType, `{"spec":{}}`, "not a protobuf object"},
		{"a pod as protobuf", "v1", "selfsubjectrulesreviews", protobufContentType, protobufPod(t), "not a protobuf object"},
		{"another encoding", "v1", "selfsubjectaccessreviews", "application/cbor", `{}`, "cannot be read"},
		{"another version", "v1beta1", "selfsubjectaccessreviews", "application/json", `{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}`, "only authorization.k8s.io/v1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			err := New().SelfReview(rec, selfReviewAction(t, tt.resource, tt.version), tt.ctype, []byte(tt.body), noCan(t), noRules(t))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("SelfReview() = %v, want an error with %q", err, tt.want)
			}
			if rec.Body.Len() != 0 {
				t.Errorf("wrote %q with the error", rec.Body)
			}
		})
	}
}

// TestSelfReviewPassesCanErrorsOn: a failure to decide is the caller's to
// answer; nothing is written.
func TestSelfReviewPassesCanErrorsOn(t *testing.T) {
	boom := errors.New("policies failed")
	rec := httptest.NewRecorder()
	body := `{"spec":{"resourceAttributes":{"verb":"get","resource":"pods"}}}`
	err := New().SelfReview(rec, selfReviewAction(t, "selfsubjectaccessreviews", "v1"), "", []byte(body),
		func(access.Action) (access.Answer, error) { return access.Answer{}, boom }, noRules(t))
	if !errors.Is(err, boom) || rec.Body.Len() != 0 {
		t.Errorf("SelfReview() = %v, wrote %q", err, rec.Body)
	}
}

func FuzzSelfReview(f *testing.F) {
	f.Add("selfsubjectaccessreviews", "application/json", []byte(`{"spec":{"resourceAttributes":{"namespace":"demo","verb":"list","resource":"pods"}}}`))
	f.Add("selfsubjectaccessreviews", "", []byte(`{"spec":{"nonResourceAttributes":{"path":"/healthz","verb":"get"}}}`))
	f.Add("selfsubjectrulesreviews", "application/json", []byte(`{"spec":{"namespace":"demo"}}`))
	f.Add("selfsubjectrulesreviews", protobufContentType, []byte("k8s\x00\n\x0b\n\x01v\x12\x06Status"))
	f.Fuzz(func(t *testing.T, resource, ctype string, body []byte) {
		if resource != "selfsubjectaccessreviews" {
			resource = "selfsubjectrulesreviews"
		}
		a := selfReviewAction(t, resource, "v1")
		rec := httptest.NewRecorder()
		can := func(q access.Action) (access.Answer, error) {
			if q.Kubernetes == nil || q.Kubernetes.Verb == "" {
				t.Errorf("asked about %+v", q)
			}
			return access.Answer{Allowed: true, Reason: "fuzz"}, nil
		}
		rules := func(string) []access.KubernetesPermission {
			return []access.KubernetesPermission{{Verbs: []string{"get"}, Resources: []string{"pods"}}}
		}
		if err := New().SelfReview(rec, a, ctype, body, can, rules); err != nil {
			if rec.Body.Len() != 0 {
				t.Errorf("wrote %q with error %v", rec.Body, err)
			}
			return
		}
		if rec.Code != http.StatusCreated || !json.Valid(rec.Body.Bytes()) {
			t.Errorf("answered %d %q", rec.Code, rec.Body)
		}
	})
}

func noCan(t *testing.T) func(access.Action) (access.Answer, error) {
	return func(a access.Action) (access.Answer, error) {
		t.Errorf("asked about %+v", a)
		return access.Answer{}, nil
	}
}

func noRules(t *testing.T) func(string) []access.KubernetesPermission {
	return func(ns string) []access.KubernetesPermission {
		t.Errorf("asked for the rules of %q", ns)
		return nil
	}
}

func decodeAnswer[T any](t *testing.T, rec *httptest.ResponseRecorder) T {
	t.Helper()
	var v T
	if rec.Code != http.StatusCreated || rec.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("answered %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil {
		t.Fatalf("answer %q: %v", rec.Body, err)
	}
	return v
}
