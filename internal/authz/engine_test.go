package authz_test

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/policies"
)

// newEngine builds an Engine on the shipped policies, with the builtins
// they call.
func newEngine(t testing.TB) *authz.Engine {
	t.Helper()
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.New(context.Background(), authz.Config{Policies: policies.Authz(), Builtins: []authz.Builtin{ps.Builtin()}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var podReader = authz.Grant{
	ID: "g-1", Policy: "pod-reader", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
}

var podAdmin = authz.Grant{
	ID: "g-2", Policy: "pod-admin", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
}

func listPods(ns string) access.Action {
	return access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET", Path: "/api/v1/namespaces/" + ns + "/pods", Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: ns}}
}

func TestDecide(t *testing.T) {
	createPod := listPods("demo")
	createPod.Kubernetes.Verb, createPod.Method = "create", "POST"
	privileged := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "web"}, "spec": map[string]any{"containers": []any{
		map[string]any{"name": "app", "image": "registry.k8s.io/pause", "securityContext": map[string]any{"privileged": true}},
	}}}
	tests := []struct {
		name string
		in   authz.Input
		want authz.Decision
	}{
		{
			name: "no grant denies by default",
			in:   authz.Input{Action: listPods("demo")},
			want: authz.Decision{GrantIDs: []string{}, Reasons: []string{authz.ReasonNoGrant}},
		},
		{
			name: "grant in scope allows",
			in:   authz.Input{Action: listPods("demo"), Grants: []authz.Grant{podReader}},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-1"}, Reasons: []string{"permitted by grant g-1"}},
		},
		{
			name: "every permitting grant is listed",
			in:   authz.Input{Action: listPods("demo"), Grants: []authz.Grant{podAdmin, podReader}},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-1", "g-2"}, Reasons: []string{"permitted by grant g-1", "permitted by grant g-2"}},
		},
		{
			name: "other namespace denies",
			in:   authz.Input{Action: listPods("prod"), Grants: []authz.Grant{podReader}},
			want: authz.Decision{GrantIDs: []string{}, Reasons: []string{authz.ReasonNoGrant}},
		},
		{
			name: "discovery needs no grant",
			in:   authz.Input{Action: access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET", Path: "/api", Kubernetes: &access.KubernetesAction{Verb: "get"}}},
			want: authz.Decision{Allowed: true, Discovery: true, GrantIDs: []string{}, Reasons: []string{authz.ReasonDiscovery}},
		},
		{
			name: "forbid beats permit",
			in:   authz.Input{Action: createPod, Object: privileged, Grants: []authz.Grant{podAdmin}},
			want: authz.Decision{GrantIDs: []string{"g-2"}, Reasons: []string{
				`pod violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)`,
			}},
		},
		{
			name: "the body is not judged",
			in:   authz.Input{Action: createPod, Body: privileged, Grants: []authz.Grant{podAdmin}},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-2"}, Reasons: []string{"permitted by grant g-2"}},
		},
	}
	e := newEngine(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestObjectsInInput(t *testing.T) {
	files := fstest.MapFS{"a.rego": {Data: []byte(`package jitproxy.authz
permit contains "g-1" if true
forbid contains sprintf("object=%v old_object=%v", [object.get(input, "object", "absent"), object.get(input, "old_object", "absent")])
`)}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   authz.Input
		want []string
	}{
		{name: "neither", in: authz.Input{}, want: []string{"object=absent old_object=absent"}},
		{name: "create", in: authz.Input{Object: map[string]any{"kind": "Pod"}}, want: []string{`object={"kind": "Pod"} old_object=absent`}},
		{
			name: "update",
			in:   authz.Input{Object: map[string]any{"v": 2.0}, OldObject: map[string]any{"v": 1.0}},
			want: []string{`object={"v": 2} old_object={"v": 1}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Reasons); diff != "" {
				t.Errorf("Decide() reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsBadPolicySets(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{name: "empty", files: fstest.MapFS{}, wantErr: "no .rego policy files"},
		{name: "only tests", files: fstest.MapFS{"a_test.rego": {Data: []byte("package x\ntest_a if true\n")}}, wantErr: "no .rego policy files"},
		{name: "syntax error", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains if {\n")}}, wantErr: "a.rego"},
		{name: "no permit rule", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\nforbid contains \"x\" if false\n")}}, wantErr: "no policy defines data.jitproxy.authz.permit"},
		{name: "wrong package", files: fstest.MapFS{"a.rego": {Data: []byte("package other\npermit contains \"x\" if true\n")}}, wantErr: "no policy defines"},
		{name: "compile error", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains x if true\n")}}, wantErr: "compile policies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.New(context.Background(), authz.Config{Policies: tt.files})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPolicyWithoutForbidRule(t *testing.T) {
	files := fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains g.id if some g in input.grants\n")}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), authz.Input{Grants: []authz.Grant{{ID: "g-1"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Allowed {
		t.Errorf("Decide() = %+v, want allowed", got)
	}
}

func TestEvaluationErrorFailsClosed(t *testing.T) {
	// Two different values for one complete rule is an evaluation error.
	files := fstest.MapFS{"a.rego": {Data: []byte(`package jitproxy.authz
permit contains "g-1" if true
forbid contains reason if reason := conflict
conflict := "a" if true
conflict := "b" if input.action.kubernetes.verb == "get"
`)}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), authz.Input{Action: access.Action{Kubernetes: &access.KubernetesAction{Verb: "get"}}})
	if err == nil {
		t.Fatalf("Decide() = %+v, nil; want an error", got)
	}
	if got.Allowed {
		t.Error("a failed evaluation returned Allowed")
	}
}

func BenchmarkDecide(b *testing.B) {
	e := newEngine(b)
	in := authz.Input{
		Caller: access.Caller{Session: "s-1", Agent: "agent", User: "alice", Groups: []string{"dev"}},
		Action: listPods("demo"),
		Grants: []authz.Grant{podAdmin, podReader},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecideDeployment measures admission: the shipped policies judge
// a Deployment's pod template with jitproxy.pod_security.
func BenchmarkDecideDeployment(b *testing.B) {
	e := newEngine(b)
	action := listPods("demo")
	action.Kubernetes.Verb, action.Method, action.Kubernetes.APIGroup, action.Kubernetes.Resource = "create", "POST", "apps", "deployments"
	in := authz.Input{
		Caller: access.Caller{Session: "s-1", Agent: "agent", User: "alice", Groups: []string{"dev"}},
		Action: action,
		Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": "demo"},
			"spec": map[string]any{"replicas": 2.0, "template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "app", "image": "registry.k8s.io/pause", "ports": []any{map[string]any{"containerPort": 8080.0}}},
				}},
			}},
		},
		Grants: []authz.Grant{{ID: "g-3", Target: "demo", Namespace: "demo", Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}}}}}},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(ctx, in)
		if err != nil || !d.Allowed {
			b.Fatalf("Decide() = %+v, %v; want allowed", d, err)
		}
	}
}

func TestUsesOldObject(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want bool
	}{
		{name: "no reference", rule: `forbid contains "x" if input.object.spec.hostPID`, want: false},
		{name: "input.old_object", rule: `forbid contains "x" if input.old_object.spec.replicas > 5`, want: true},
		{name: "input[\"old_object\"]", rule: `forbid contains "x" if input["old_object"]`, want: true},
		{name: "input as a whole", rule: `forbid contains "x" if { x := input; x.old_object }`, want: true},
		{name: "a key chosen at evaluation", rule: `forbid contains k if { some k; input[k] == 1 }`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := fstest.MapFS{"p.rego": {Data: []byte("package jitproxy.authz\n\npermit contains \"g\" if false\n\n" + tt.rule + "\n")}}
			e, err := authz.New(context.Background(), authz.Config{Policies: files})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.UsesOldObject(); got != tt.want {
				t.Errorf("UsesOldObject() = %v, want %v", got, tt.want)
			}
		})
	}
	if newEngine(t).UsesOldObject() {
		t.Error("the shipped policies read input.old_object: every change would cost a read of the stored object")
	}
}
