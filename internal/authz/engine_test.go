package authz

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/policies"
)

func newEngine(t testing.TB) *Engine {
	t.Helper()
	e, err := New(context.Background(), Config{Policies: policies.Authz()})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var podReader = Grant{
	ID: "g-1", Policy: "pod-reader", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
}

var podAdmin = Grant{
	ID: "g-2", Policy: "pod-admin", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods"}}},
}

func listPods(ns string) access.Action {
	return access.Action{
		Kind: access.KindKubernetes, Target: "demo", Verb: "list", ResourceRequest: true,
		APIVersion: "v1", Resource: "pods", Namespace: ns, Method: "GET", Path: "/api/v1/namespaces/" + ns + "/pods",
	}
}

func TestDecide(t *testing.T) {
	createPod := listPods("demo")
	createPod.Verb, createPod.Method = "create", "POST"
	privileged := map[string]any{"spec": map[string]any{"containers": []any{
		map[string]any{"name": "app", "securityContext": map[string]any{"privileged": true}},
	}}}
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{
			name: "no grant denies by default",
			in:   Input{Action: listPods("demo")},
			want: Decision{GrantIDs: []string{}, Reasons: []string{ReasonNoGrant}},
		},
		{
			name: "grant in scope allows",
			in:   Input{Action: listPods("demo"), Grants: []Grant{podReader}},
			want: Decision{Allowed: true, GrantIDs: []string{"g-1"}, Reasons: []string{"permitted by grant g-1"}},
		},
		{
			name: "every permitting grant is listed",
			in:   Input{Action: listPods("demo"), Grants: []Grant{podAdmin, podReader}},
			want: Decision{Allowed: true, GrantIDs: []string{"g-1", "g-2"}, Reasons: []string{"permitted by grant g-1", "permitted by grant g-2"}},
		},
		{
			name: "other namespace denies",
			in:   Input{Action: listPods("prod"), Grants: []Grant{podReader}},
			want: Decision{GrantIDs: []string{}, Reasons: []string{ReasonNoGrant}},
		},
		{
			name: "discovery needs no grant",
			in:   Input{Action: access.Action{Kind: access.KindKubernetes, Target: "demo", Verb: "get", Method: "GET", Path: "/api"}},
			want: Decision{Allowed: true, Discovery: true, GrantIDs: []string{}, Reasons: []string{ReasonDiscovery}},
		},
		{
			name: "forbid beats permit",
			in:   Input{Action: createPod, Body: privileged, Grants: []Grant{podAdmin}},
			want: Decision{GrantIDs: []string{"g-2"}, Reasons: []string{`container "app" must not be privileged`}},
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
			_, err := New(context.Background(), Config{Policies: tt.files})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPolicyWithoutForbidRule(t *testing.T) {
	files := fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains g.id if some g in input.grants\n")}}
	e, err := New(context.Background(), Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), Input{Grants: []Grant{{ID: "g-1"}}})
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
conflict := "b" if input.action.verb == "get"
`)}}
	e, err := New(context.Background(), Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), Input{Action: access.Action{Verb: "get"}})
	if err == nil {
		t.Fatalf("Decide() = %+v, nil; want an error", got)
	}
	if got.Allowed {
		t.Error("a failed evaluation returned Allowed")
	}
}

func BenchmarkDecide(b *testing.B) {
	e := newEngine(b)
	in := Input{
		Caller: access.Caller{Session: "s-1", Agent: "agent", User: "alice", Groups: []string{"dev"}},
		Action: listPods("demo"),
		Grants: []Grant{podAdmin, podReader},
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.Decide(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
}
