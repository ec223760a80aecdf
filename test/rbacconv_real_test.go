package test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
	"github.com/jitproxy/jitproxy/test/servers"
)

// rbacconvExtra is RBAC the demo setup lacks, applied beside it: a
// ClusterRole with a cluster-scoped resource and nonResourceURLs, bound
// cluster-wide to a group and in one namespace to a user.
const rbacconvExtra = `
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: rbacconv-viewer}
rules:
  - apiGroups: [""]
    resources: [nodes, pods]
    verbs: [get, list]
  - nonResourceURLs: [/metrics]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: rbacconv-auditors}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rbacconv-viewer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: Group, name: auditors}]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: rbacconv-erin, namespace: staging}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: rbacconv-viewer}
subjects: [{apiGroup: rbac.authorization.k8s.io, kind: User, name: erin}]
`

// TestConvertRBACRealCluster converts the demo RBAC of a real cluster
// with `jitproxy policy convert-rbac --kubeconfig` and checks, probe by
// probe, that the converted policies allow exactly what the bindings
// allow: the apiserver's SubjectAccessReview for the subject against
// jitproxy's own decision for grants of the policies the subject may
// request (the shipped Rego, with the grant in the probe's namespace).
func TestConvertRBACRealCluster(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	root, err := servers.Root()
	if err != nil {
		t.Fatal(err)
	}
	kubectl := kubectlPath(t)
	dir := t.TempDir()
	env, err := servers.StartEnv(ctx, dir, servers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, p := range env.Processes() {
				t.Logf("%s log, last lines:\n%s", p.Name, p.Tail(20))
			}
		}
		env.Stop()
	})
	if err := env.Bootstrap(ctx, root, kubectl); err != nil {
		t.Fatal(err)
	}
	extra := filepath.Join(dir, "extra.yaml")
	if err := os.WriteFile(extra, []byte(rbacconvExtra), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := env.Kubectl(ctx, kubectl, "apply", "-f", extra); err != nil {
		t.Fatal(err)
	}

	cmd := exec.CommandContext(ctx, jitproxyBin, "policy", "convert-rbac", "--target", "demo", "--kubeconfig", env.Kube.AdminKubeconfig)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("convert-rbac: %v\n%s", err, stderr.String())
	}
	t.Logf("convert-rbac said:\n%s", stderr.String())
	ps, err := jit.ParsePolicies("converted.yaml", stdout.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, stdout.String())
	}
	if _, err := jit.NewPolicies(ps); err != nil {
		t.Fatal(err)
	}
	// The eight demo bindings and the two above; the cluster's own are left out.
	if len(ps) != 10 {
		t.Errorf("%d policies converted, want 10:\n%s", len(ps), stdout.String())
	}

	checker, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	engine, err := authz.New(ctx, authz.Config{Policies: policies.Authz(), Builtins: []authz.Builtin{checker.Builtin()}})
	if err != nil {
		t.Fatal(err)
	}
	admin, err := kubernetes.NewForConfig(&rest.Config{Host: env.Kube.URL, BearerToken: env.Kube.AdminToken, TLSClientConfig: rest.TLSClientConfig{CAData: env.Kube.CAPEM}})
	if err != nil {
		t.Fatal(err)
	}

	sa := func(ns, name string) (string, []string) {
		return "system:serviceaccount:" + ns + ":" + name, []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"}
	}
	podReader, podReaderGroups := sa("demo", "jitproxy-pod-reader")
	editor, editorGroups := sa("demo", "jitproxy-namespace-editor")
	stagingReader, stagingReaderGroups := sa("staging", "jitproxy-pod-reader")
	authed := []string{"system:authenticated"}
	tests := []struct {
		user                                                string
		groups                                              []string
		verb, group, resource, subresource, namespace, name string
		path                                                string // a non-resource request
		want                                                bool
	}{
		{user: podReader, groups: podReaderGroups, verb: "get", resource: "pods", namespace: "demo", name: "web", want: true},
		{user: podReader, groups: podReaderGroups, verb: "get", resource: "pods", subresource: "log", namespace: "demo", name: "web", want: true},
		{user: podReader, groups: podReaderGroups, verb: "list", resource: "pods", namespace: "staging"},
		{user: podReader, groups: podReaderGroups, verb: "list", resource: "pods"},
		{user: podReader, groups: podReaderGroups, verb: "delete", resource: "pods", namespace: "demo", name: "web"},
		{user: podReader, groups: podReaderGroups, verb: "create", resource: "pods", subresource: "exec", namespace: "demo", name: "web"},
		{user: stagingReader, groups: stagingReaderGroups, verb: "list", resource: "pods", namespace: "staging", want: true},
		{user: stagingReader, groups: stagingReaderGroups, verb: "list", resource: "pods", namespace: "demo"},
		{user: editor, groups: editorGroups, verb: "patch", group: "apps", resource: "deployments", namespace: "demo", name: "web", want: true},
		{user: editor, groups: editorGroups, verb: "update", group: "apps", resource: "deployments", subresource: "scale", namespace: "demo", name: "web", want: true},
		{user: editor, groups: editorGroups, verb: "create", group: "batch", resource: "cronjobs", namespace: "demo", want: true},
		{user: editor, groups: editorGroups, verb: "create", group: "batch", resource: "jobs", namespace: "staging"},
		{user: editor, groups: editorGroups, verb: "get", resource: "secrets", namespace: "demo", name: "x"},
		{user: editor, groups: editorGroups, verb: "deletecollection", resource: "pods", namespace: "demo"},
		{user: "jitproxy", groups: authed, verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "demo", name: "jitproxy-pod-reader", want: true},
		{user: "jitproxy", groups: authed, verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "demo", name: "default"},
		{user: "jitproxy", groups: authed, verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "demo"},
		{user: "jitproxy", groups: authed, verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "default", name: "default", want: true},
		{user: "jitproxy", groups: authed, verb: "create", resource: "serviceaccounts", subresource: "token", namespace: "staging", name: "jitproxy-namespace-editor", want: true},
		{user: "jitproxy", groups: authed, verb: "create", group: "authentication.k8s.io", resource: "tokenreviews", want: true},
		{user: "jitproxy", groups: authed, verb: "get", resource: "serviceaccounts", namespace: "demo", name: "default"},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "get", resource: "nodes", name: "n1", want: true},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "list", resource: "pods", namespace: "demo", want: true},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "list", resource: "pods", want: true},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "delete", resource: "nodes", name: "n1"},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "get", path: "/metrics", want: true},
		{user: "dave", groups: []string{"auditors", "system:authenticated"}, verb: "get", path: "/debug/pprof/"},
		{user: "dave", groups: authed, verb: "get", resource: "nodes", name: "n1"},
		{user: "erin", groups: authed, verb: "get", resource: "pods", namespace: "staging", name: "web", want: true},
		{user: "erin", groups: authed, verb: "get", resource: "pods", namespace: "demo", name: "web"},
		{user: "erin", groups: authed, verb: "get", resource: "nodes", name: "n1"},
		{user: "erin", groups: authed, verb: "get", path: "/metrics"},
		{user: "erin", groups: authed, verb: "list", resource: "pods"},
	}
	for _, tt := range tests {
		what := fmt.Sprintf("%s %s %s/%s/%s %s/%s", tt.user, tt.verb, tt.group, tt.resource, tt.subresource, tt.namespace, tt.name)
		if tt.path != "" {
			what = fmt.Sprintf("%s %s %s", tt.user, tt.verb, tt.path)
		}
		t.Run(what, func(t *testing.T) {
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{User: tt.user, Groups: tt.groups}}
			action := access.Action{Kind: access.KindKubernetes, Target: "demo", Path: tt.path}
			if tt.path != "" {
				sar.Spec.NonResourceAttributes = &authorizationv1.NonResourceAttributes{Path: tt.path, Verb: tt.verb}
				action.Kubernetes = &access.KubernetesAction{Verb: tt.verb}
			} else {
				sar.Spec.ResourceAttributes = &authorizationv1.ResourceAttributes{Namespace: tt.namespace, Verb: tt.verb, Group: tt.group, Resource: tt.resource, Subresource: tt.subresource, Name: tt.name}
				action.Kubernetes = &access.KubernetesAction{Verb: tt.verb, ResourceRequest: true, APIGroup: tt.group, APIVersion: "v1",
					Resource: tt.resource, Subresource: tt.subresource, Namespace: tt.namespace, Name: tt.name}
			}
			got, err := admin.AuthorizationV1().SubjectAccessReviews().Create(ctx, sar, metav1.CreateOptions{})
			if err != nil {
				t.Fatal(err)
			}
			// The grants the subject could hold for this request: one per
			// policy it may request, in the request's namespace.
			var grants []authz.Grant
			for _, p := range ps {
				ns, ok := p.RequestableNamespace(tt.namespace)
				if !p.Subjects.Matches(tt.user, tt.groups) || !ok {
					continue
				}
				grants = append(grants, authz.Grant{ID: p.Name, Policy: p.Name, Target: p.Target, Namespace: ns, Permissions: p.Permissions})
			}
			d, err := engine.Decide(ctx, authz.Input{Caller: access.Caller{User: tt.user, Groups: tt.groups}, Action: action, Grants: authz.NewGrantSet(grants...)})
			if err != nil {
				t.Fatal(err)
			}
			if got.Status.Allowed != d.Allowed || d.Allowed != tt.want {
				t.Errorf("apiserver allowed=%t (%s), converted policies allowed=%t (%s), want %t",
					got.Status.Allowed, got.Status.Reason, d.Allowed, strings.Join(d.Reasons, "; "), tt.want)
			}
		})
	}
}
