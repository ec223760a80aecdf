package intercept

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// TestSelfAccessReview: kubectl auth can-i is answered by jitproxy from
// the caller's grants and the policies, needs no grant, and reaches
// neither the upstream nor the credential broker.
func TestSelfAccessReview(t *testing.T) {
	readerPolicy := &jit.Policy{
		Name: "pod-reader", Target: "demo", Namespaces: []string{"demo"},
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
	}
	execAnywhere := podReaderGrant(time.Hour)
	execAnywhere.Namespace = ""
	execAnywhere.Permissions = []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"create"}, APIGroups: []string{""}, Resources: []string{"pods/exec"}}}}
	tests := []struct {
		name        string
		grants      []*jit.Grant
		noDiscovery bool
		attributes  string // the spec's members
		want        authorizationv1.SubjectAccessReviewStatus
	}{
		{
			name:       "no grant: no, and the policy to request",
			attributes: `"resourceAttributes":{"namespace":"demo","verb":"list","resource":"pods"}`,
			want: authorizationv1.SubjectAccessReviewStatus{Reason: `jitproxy would deny list pods in namespace "demo": no active grant permits this request. ` +
				`Access policies that would allow it: pod-reader. Request a grant with: jitproxy grant request pod-reader --namespace demo --reason "..."`},
		},
		{
			name: "under a grant: yes", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			attributes: `"resourceAttributes":{"namespace":"demo","verb":"list","resource":"pods"}`,
			want:       authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "jitproxy: permitted by grant g-read"},
		},
		{
			name: "outside the grant's namespace: no", grants: []*jit.Grant{podReaderGrant(time.Hour)},
			attributes: `"resourceAttributes":{"namespace":"prod","verb":"get","resource":"pods","name":"web"}`,
			want: authorizationv1.SubjectAccessReviewStatus{Reason: `jitproxy would deny get pods "web" in namespace "prod": no active grant permits this request. ` +
				`No access policy you may request allows it; ask your jitproxy administrator.`},
		},
		{
			name: "forbidden whatever the grant: denied", grants: []*jit.Grant{execAnywhere},
			attributes: `"resourceAttributes":{"namespace":"kube-system","verb":"create","resource":"pods","subresource":"exec","name":"etcd"}`,
			want: authorizationv1.SubjectAccessReviewStatus{Denied: true,
				Reason: `jitproxy would deny create pods/exec "etcd" in namespace "kube-system": exec, attach and port-forward into kube-system are forbidden`},
		},
		{
			name:       "discovery needs no grant",
			attributes: `"nonResourceAttributes":{"path":"/apis","verb":"get"}`,
			want:       authorizationv1.SubjectAccessReviewStatus{Allowed: true, Reason: "jitproxy: discovery documents need no grant"},
		},
		{
			name: "discovery without a discovery identity", noDiscovery: true,
			attributes: `"nonResourceAttributes":{"path":"/apis","verb":"get"}`,
			want:       authorizationv1.SubjectAccessReviewStatus{Reason: "jitproxy would deny get /apis: this target has no discovery identity; request a grant first"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var upstream atomic.Int32
			h := newHarness(t, harnessOptions{noDiscovery: tt.noDiscovery, handler: http.HandlerFunc(func(http.ResponseWriter, *http.Request) { upstream.Add(1) })})
			h.sessions.setGrants(tt.grants...)
			h.sessions.policies = []*jit.Policy{readerPolicy}
			body := `{"kind":"SelfSubjectAccessReview","apiVersion":"authorization.k8s.io/v1","spec":{` + tt.attributes + `}}`
			var got authorizationv1.SelfSubjectAccessReview
			postReview(t, h, "selfsubjectaccessreviews", body, &got)
			if diff := cmp.Diff(tt.want, got.Status); diff != "" {
				t.Errorf("status (-want +got):\n%s", diff)
			}
			if n, m := upstream.Load(), h.creds.calls.Load(); n != 0 || m != 0 {
				t.Errorf("the upstream was reached %d times, the broker asked %d times", n, m)
			}
			e := lastEvent(t, h.audit)
			verdict := "no"
			if tt.want.Allowed {
				verdict = "yes"
			}
			if e.Outcome == nil || e.Outcome.Status != http.StatusCreated || e.Decision == nil || len(e.Decision.Reasons) != 2 ||
				e.Decision.Reasons[0] != "answered by jitproxy" || !strings.HasSuffix(e.Decision.Reasons[1], ": "+verdict) {
				t.Errorf("audit: outcome %+v decision %+v", e.Outcome, e.Decision)
			}
		})
	}
}

// TestSelfRulesReview: kubectl auth can-i --list lists the permissions of
// the grants in force in the namespace asked about.
func TestSelfRulesReview(t *testing.T) {
	cluster := podReaderGrant(time.Hour)
	cluster.ID, cluster.Namespace = "g-nodes", ""
	cluster.Permissions = []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}}}
	otherTarget := podReaderGrant(time.Hour)
	otherTarget.ID, otherTarget.Target = "g-other", "other"
	podRules := authorizationv1.ResourceRule{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}
	nodeRules := authorizationv1.ResourceRule{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"nodes"}}
	tests := []struct {
		namespace string
		want      []authorizationv1.ResourceRule
	}{
		{namespace: "demo", want: []authorizationv1.ResourceRule{podRules, nodeRules}},
		{namespace: "prod", want: []authorizationv1.ResourceRule{nodeRules}},
		{namespace: "", want: []authorizationv1.ResourceRule{nodeRules}},
	}
	for _, tt := range tests {
		t.Run(tt.namespace, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.sessions.setGrants(podReaderGrant(time.Hour), cluster, otherTarget)
			var got authorizationv1.SelfSubjectRulesReview
			postReview(t, h, "selfsubjectrulesreviews", `{"spec":{"namespace":"`+tt.namespace+`"}}`, &got)
			if diff := cmp.Diff(tt.want, got.Status.ResourceRules); diff != "" {
				t.Errorf("rules (-want +got):\n%s", diff)
			}
			if !got.Status.Incomplete {
				t.Error("the rules are not marked incomplete: the policies decide")
			}
		})
	}
}

func TestSelfReviewRefusesAMalformedReview(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	req, _ := http.NewRequest("POST", "https://kubernetes.demo/apis/authorization.k8s.io/v1/selfsubjectaccessreviews", strings.NewReader(`{"spec":{}}`))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.agent().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	st := kubeStatus(t, resp)
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(st.Message, "cannot answer this review: a SelfSubjectAccessReview needs exactly one of") {
		t.Errorf("%d %q", resp.StatusCode, st.Message)
	}
}

// postReview sends a review through h's tunnel and decodes the answer.
func postReview(t *testing.T, h *harness, resource, body string, into any) {
	t.Helper()
	req, _ := http.NewRequest("POST", "https://kubernetes.demo/apis/authorization.k8s.io/v1/"+resource, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := h.agent().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s: %d %s", resource, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, into); err != nil {
		t.Fatalf("%s: %v: %s", resource, err, b)
	}
}
