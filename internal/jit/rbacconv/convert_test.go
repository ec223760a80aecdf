package rbacconv

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// rbacYAML is a small cluster's RBAC: a Role and a ClusterRole bound in a
// namespace, a ClusterRole bound cluster-wide, and what must be left out.
const rbacYAML = `
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: reader, namespace: demo}
rules:
  - apiGroups: [""]
    resources: [pods, pods/log, "pods/*"]
    verbs: [get, list]
  - apiGroups: [""]
    resources: [secrets]
    resourceNames: [app]
    verbs: [get]
  - resources: [configmaps]
    verbs: [get]
  - nonResourceURLs: [/healthz]
    verbs: [get]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: readers, namespace: demo}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: reader}
subjects:
  - {kind: User, name: alice}
  - {kind: Group, name: devs}
  - {kind: ServiceAccount, name: ci}
  - {kind: ServiceAccount, name: ci, namespace: demo}
---
apiVersion: v1
kind: List
items:
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRole
    metadata: {name: ops}
    rules:
      - apiGroups: ["*"]
        resources: ["*"]
        verbs: ["*"]
      - nonResourceURLs: ["/metrics", "/debug/*"]
        verbs: [get]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: Ops_Team}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ops}
    subjects: [{kind: Group, name: sre}]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: ops, namespace: staging}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: ops}
    subjects: [{kind: User, name: bob}]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: ClusterRoleBinding
    metadata: {name: "system:basic-user"}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:basic-user"}
    subjects: [{kind: Group, name: "system:authenticated"}]
  - apiVersion: rbac.authorization.k8s.io/v1
    kind: RoleBinding
    metadata: {name: orphan, namespace: demo}
    roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: missing}
    subjects: [{kind: User, name: carol}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: ignored}
`

func TestConvert(t *testing.T) {
	r, err := ReadManifests("rbac.yaml", []byte(rbacYAML))
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(r, Options{Target: "demo", Approvers: []string{"sre"}, MaxDuration: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	type view struct {
		Source      string
		Subjects    jit.Subjects
		Namespaces  []string
		ClusterWide bool
		Permissions []access.Permission
		Credential  jit.CredentialSpec
	}
	got := map[string]view{}
	for _, p := range res.Policies {
		got[p.Name] = view{p.Source, p.Parsed.Subjects, p.Parsed.Namespaces, p.Parsed.ClusterWide, p.Parsed.Permissions, p.Parsed.Credential}
		if p.Parsed.Duration.Max != 2*time.Hour || p.Parsed.Approval.Required != 1 || p.Parsed.Target != "demo" {
			t.Errorf("%s: duration %s, approvals %d, target %q", p.Name, p.Parsed.Duration.Max, p.Parsed.Approval.Required, p.Parsed.Target)
		}
	}
	k := func(verbs, groups, resources, names, urls []string) access.Permission {
		return access.Permission{Kubernetes: &access.KubernetesPermission{Verbs: verbs, APIGroups: groups, Resources: resources, ResourceNames: names, NonResourceURLs: urls}}
	}
	opsRule := k([]string{"*"}, []string{"*"}, []string{"*"}, nil, nil)
	want := map[string]view{
		"demo-readers": {
			Source:     "RoleBinding demo/readers",
			Subjects:   jit.Subjects{Users: []string{"alice", "system:serviceaccount:demo:ci"}, Groups: []string{"devs"}},
			Namespaces: []string{"demo"},
			Permissions: []access.Permission{
				k([]string{"get", "list"}, []string{""}, []string{"pods", "pods/log"}, nil, nil),
				k([]string{"get"}, []string{""}, []string{"secrets"}, []string{"app"}, nil),
			},
			Credential: jit.CredentialSpec{Provider: "tokenrequest", Options: map[string]string{"serviceAccount": "jitproxy-demo-readers"}},
		},
		"staging-ops": {
			Source:      "RoleBinding staging/ops",
			Subjects:    jit.Subjects{Users: []string{"bob"}},
			Namespaces:  []string{"staging"},
			Permissions: []access.Permission{opsRule},
			Credential:  jit.CredentialSpec{Provider: "tokenrequest", Options: map[string]string{"serviceAccount": "jitproxy-staging-ops"}},
		},
		"ops-team-" + withSuffix("", "ClusterRoleBinding Ops_Team")[len("rbac-"):]: {
			Source:      "ClusterRoleBinding Ops_Team",
			Subjects:    jit.Subjects{Groups: []string{"sre"}},
			ClusterWide: true,
			Permissions: []access.Permission{opsRule, k([]string{"get"}, nil, nil, nil, []string{"/metrics", "/debug/*"})},
			Credential: jit.CredentialSpec{Provider: "tokenrequest", Options: map[string]string{
				"serviceAccount": "jitproxy-" + withSuffix("ops-team", "ClusterRoleBinding Ops_Team"), "serviceAccountNamespace": "jitproxy-system"}},
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("policies (-want +got):\n%s", diff)
	}
	wantWarnings := []string{
		`ClusterRoleBinding Ops_Team (ClusterRole ops): rule 1: kept, but verbs * let its holder escalate privileges`,
		`RoleBinding demo/orphan: skipped: its Role demo/missing is not among those read`,
		`RoleBinding demo/readers: ServiceAccounts kept as users system:serviceaccount:NAMESPACE:NAME, which no jitproxy session can be (session users hold no ":"): replace them with the people or groups that run those workloads`,
		`RoleBinding demo/readers (Role demo/reader): rule 1: resource "pods/*" left out: RBAC reads it as a subresource named "*", which matches nothing`,
		`RoleBinding demo/readers (Role demo/reader): rule 3: left out: resources without apiGroups match nothing`,
		`RoleBinding demo/readers (Role demo/reader): rule 4: nonResourceURLs left out: RBAC ignores them in a RoleBinding`,
		`RoleBinding staging/ops (ClusterRole ops): rule 1: kept, but verbs * let its holder escalate privileges`,
		`RoleBinding staging/ops (ClusterRole ops): rule 2: nonResourceURLs left out: RBAC ignores them in a RoleBinding`,
		`1 system bindings left out (include them with IncludeSystem, --exclude-system=false)`,
	}
	if diff := cmp.Diff(wantWarnings, res.Warnings); diff != "" {
		t.Errorf("warnings (-want +got):\n%s", diff)
	}
}

func TestConvertOptions(t *testing.T) {
	r, err := ReadManifests("rbac.yaml", []byte(rbacYAML))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    Options
		want []string
	}{
		{name: "namespace", o: Options{Target: "t", Namespace: "staging"}, want: []string{"staging-ops"}},
		{name: "system included", o: Options{Target: "t", Namespace: "", IncludeSystem: true},
			want: []string{"demo-readers", "ops-team-" + withSuffix("", "ClusterRoleBinding Ops_Team")[len("rbac-"):], "staging-ops"}}, // system:basic-user's ClusterRole is not in the file
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Convert(r, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, p := range res.Policies {
				got = append(got, p.Name)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("policies (-want +got):\n%s", diff)
			}
		})
	}
	if _, err := Convert(r, Options{}); err == nil {
		t.Error("Convert without a target: no error")
	}
}

// TestWriteParses checks that what Write writes for the demo cluster's
// RBAC is one stream jit.ParsePolicies reads whole, policy for policy.
func TestWriteParses(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "demo", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	r, err := ReadManifests("cluster.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Convert(r, Options{Target: "demo"})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Policies) != len(r.RoleBindings)+len(r.ClusterRoleBindings) {
		t.Errorf("%d policies from %d bindings; warnings: %q", len(res.Policies), len(r.RoleBindings)+len(r.ClusterRoleBindings), res.Warnings)
	}
	var buf bytes.Buffer
	if err := Write(&buf, res.Policies); err != nil {
		t.Fatal(err)
	}
	ps, err := jit.ParsePolicies("converted.yaml", buf.Bytes())
	if err != nil {
		t.Fatalf("%v\n%s", err, buf.String())
	}
	if len(ps) != len(res.Policies) {
		t.Fatalf("parsed %d policies, converted %d", len(ps), len(res.Policies))
	}
	for i, p := range ps {
		if diff := cmp.Diff(res.Policies[i].Parsed, p); diff != "" {
			t.Errorf("policy %d (-converted +parsed):\n%s", i, diff)
		}
	}
	if _, err := jit.NewPolicies(ps); err != nil {
		t.Error(err)
	}
	if !strings.Contains(buf.String(), "# Converted from RoleBinding demo/jitproxy-pod-reader.\n") {
		t.Errorf("no comment naming the source binding:\n%s", buf.String())
	}
}

func TestReadManifestsErrors(t *testing.T) {
	tests := []struct {
		name, data, want string
	}{
		{name: "old version", data: "apiVersion: rbac.authorization.k8s.io/v1beta1\nkind: Role\n", want: `f: document 1: Role of apiVersion "rbac.authorization.k8s.io/v1beta1": only rbac.authorization.k8s.io/v1 is read`},
		{name: "bad field", data: "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nrules: 3\n", want: "f: document 1: decode Role: json: cannot unmarshal number into Go struct field Role.rules of type []v1.PolicyRule"},
		{name: "in a list", data: `{"kind":"List","items":[{"apiVersion":"v1","kind":"RoleList","items":[{"apiVersion":"x","kind":"Role"}]}]}`, want: `f: document 1: List item 0: RoleList item 0: Role of apiVersion "x": only rbac.authorization.k8s.io/v1 is read`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadManifests("f", []byte(tt.data))
			got := ""
			if err != nil {
				got = err.Error()
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzReadManifests reads arbitrary manifests, converts what they hold
// and checks that every policy written parses.
func FuzzReadManifests(f *testing.F) {
	f.Add([]byte(rbacYAML))
	if data, err := os.ReadFile(filepath.Join("..", "..", "..", "deploy", "demo", "cluster.yaml")); err == nil {
		f.Add(data)
	}
	f.Add([]byte(`{"kind":"List","items":[{"apiVersion":"rbac.authorization.k8s.io/v1","kind":"ClusterRole","metadata":{"name":"x"},"rules":[{"verbs":["get"],"nonResourceURLs":["/\u0000"]}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ReadManifests("f", data)
		if err != nil {
			return
		}
		res, err := Convert(r, Options{Target: "t", IncludeSystem: true})
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := Write(&buf, res.Policies); err != nil {
			t.Fatal(err)
		}
		ps, err := jit.ParsePolicies("out", buf.Bytes())
		if err != nil {
			t.Fatalf("written policies do not parse: %v\n%s", err, buf.String())
		}
		if len(ps) != len(res.Policies) {
			t.Fatalf("parsed %d policies, converted %d", len(ps), len(res.Policies))
		}
		if _, err := jit.NewPolicies(ps); err != nil {
			t.Fatal(err)
		}
	})
}
