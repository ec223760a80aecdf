package jit

import (
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/policies"
)

const validPolicy = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata:
  name: pod-reader
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions:
    - {verbs: [get, list], apiGroups: [""], resources: [pods]}
  duration: {max: 1h}
  credential: {provider: tokenrequest, options: {serviceAccount: reader}}
`

func TestParsePolicies(t *testing.T) {
	ps, err := ParsePolicies("p.yaml", []byte(validPolicy))
	if err != nil {
		t.Fatal(err)
	}
	want := []*Policy{{
		Name: "pod-reader", Target: "demo", Kind: access.KindKubernetes,
		Subjects:    Subjects{Groups: []string{"developers"}},
		Namespaces:  []string{"demo"},
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
		Duration:    Durations{Default: time.Hour, Max: time.Hour},
		Approval:    Approval{Timeout: DefaultApprovalTimeout},
		Credential:  CredentialSpec{Provider: "tokenrequest", Options: map[string]string{"serviceAccount": "reader"}},
	}}
	if diff := cmp.Diff(want, ps, cmpopts.IgnoreFields(Policy{}, "Version")); diff != "" {
		t.Errorf("ParsePolicies() (-want +got):\n%s", diff)
	}
	if len(ps[0].Version) != 12 {
		t.Errorf("Version = %q, want 12 hex digits", ps[0].Version)
	}
}

func TestParsePoliciesRejects(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr []string
	}{
		{name: "unknown field", edit: func(s string) string { return s + "  colour: blue\n" }, wantErr: []string{"field colour not found"}},
		{name: "bad kind", edit: func(s string) string { return strings.Replace(s, "kind: AccessPolicy", "kind: Role", 1) }, wantErr: []string{`"Role"`}},
		{name: "bad name", edit: func(s string) string { return strings.Replace(s, "name: pod-reader", "name: Pod_Reader", 1) }, wantErr: []string{"metadata.name"}},
		{
			name: "several errors at once",
			edit: func(s string) string {
				s = strings.Replace(s, "duration: {max: 1h}", "duration: {default: 2h, max: 1h}", 1)
				return strings.Replace(s, "  target: demo\n", "", 1)
			},
			wantErr: []string{"spec.target is required", "spec.duration.default 2h0m0s must be positive and at most max 1h0m0s"},
		},
		{name: "bad duration", edit: func(s string) string { return strings.Replace(s, "max: 1h", "max: forever", 1) }, wantErr: []string{"p.yaml: document 1"}},
		{name: "approvals without approvers", edit: func(s string) string { return s + "  approval: {required: 1}\n" }, wantErr: []string{"spec.approval.approvers"}},
		{name: "cluster-wide with namespaces", edit: func(s string) string { return s + "  clusterWide: true\n" }, wantErr: []string{"spec.namespaces must be empty"}},
		{
			name:    "resources without api groups",
			edit:    func(s string) string { return strings.Replace(s, `apiGroups: [""], `, "", 1) },
			wantErr: []string{"spec.permissions[0].apiGroups is required"},
		},
		{
			name: "namespace not a label",
			edit: func(s string) string {
				return strings.Replace(s, "namespaces: [demo]", `namespaces: [Demo, demo, "../kube-system", ""]`, 1)
			},
			wantErr: []string{`spec.namespaces[0]: namespace "Demo" is not a DNS-1123 label`, `spec.namespaces[2]: namespace "../kube-system"`, `spec.namespaces[3]: namespace ""`},
		},
		{
			name: "namespace too long",
			edit: func(s string) string {
				return strings.Replace(s, "namespaces: [demo]", "namespaces: ["+strings.Repeat("a", 64)+"]", 1)
			},
			wantErr: []string{"spec.namespaces[0]", "must be no more than 63 characters"},
		},
		{
			name: "namespace with a slash beside a wildcard",
			edit: func(s string) string {
				return strings.Replace(s, "namespaces: [demo]", `namespaces: ["*", "demo/x"]`, 1)
			},
			wantErr: []string{`spec.namespaces[1]: namespace "demo/x"`},
		},
		{
			name: "hostile resourceNames",
			edit: func(s string) string {
				return strings.Replace(s, "resources: [pods]}", `resources: [pods], resourceNames: [ok, "\e[31mred", "a\nb", "", "`+strings.Repeat("r", 254)+`"]}`, 1)
			},
			wantErr: []string{
				`spec.permissions[0].resourceNames[1] holds the control or non-printable character '\x1b'`,
				`spec.permissions[0].resourceNames[2] holds the control or non-printable character '\n'`,
				"spec.permissions[0].resourceNames[3] is empty",
				"spec.permissions[0].resourceNames[4] is 254 bytes, more than the limit of 253",
			},
		},
		{
			name: "hostile nonResourceURLs",
			edit: func(s string) string {
				return strings.Replace(s, `{verbs: [get, list], apiGroups: [""], resources: [pods]}`, `{verbs: [get], nonResourceURLs: ["/healthz", "/x\a"]}`, 1)
			},
			wantErr: []string{`spec.permissions[0].nonResourceURLs[1] holds the control or non-printable character '\a'`},
		},
		{
			name:    "second document bad",
			edit:    func(s string) string { return s + "---\n" + strings.Replace(s, "provider: tokenrequest, ", "", 1) },
			wantErr: []string{"document 2", "spec.credential.provider is required"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicies("p.yaml", []byte(tt.edit(validPolicy)))
			if err == nil {
				t.Fatal("ParsePolicies() = nil error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestLoadPolicies(t *testing.T) {
	set, err := LoadPolicies(policies.Access())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.All() {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"namespace-editor", "orders-table-writer", "pod-reader", "reports-reader", "reports-writer"}, names); diff != "" {
		t.Errorf("embedded policies (-want +got):\n%s", diff)
	}
	dup := fstest.MapFS{"a.yaml": {Data: []byte(validPolicy)}, "b/c.yml": {Data: []byte(validPolicy)}}
	if _, err := LoadPolicies(dup); err == nil || !strings.Contains(err.Error(), "defined twice") {
		t.Errorf("LoadPolicies(duplicate) error = %v, want defined twice", err)
	}
}

func FuzzParsePolicies(f *testing.F) {
	f.Add([]byte(validPolicy))
	f.Add([]byte("---\n---\n"))
	f.Add([]byte("spec: {duration: {max: -1h}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ps, err := ParsePolicies("fuzz.yaml", data)
		if err != nil {
			return
		}
		for _, p := range ps {
			if p.Duration.Max <= 0 || p.Duration.Default <= 0 || p.Duration.Default > p.Duration.Max || p.Target == "" || p.Approval.Timeout <= 0 {
				t.Fatalf("accepted an invalid policy: %+v", p)
			}
			for _, ns := range p.Namespaces {
				if ns != "*" && checkNamespace(ns) != nil {
					t.Fatalf("accepted namespace %q", ns)
				}
			}
		}
	})
}

func TestRequestableNamespace(t *testing.T) {
	any := &Policy{Namespaces: []string{"*"}}
	listed := &Policy{Namespaces: []string{"demo"}}
	cluster := &Policy{ClusterWide: true}
	tests := []struct {
		name   string
		p      *Policy
		ns     string
		wantNS string
		wantOK bool
	}{
		{name: "listed", p: listed, ns: "demo", wantNS: "demo", wantOK: true},
		{name: "not listed", p: listed, ns: "prod", wantNS: "prod"},
		{name: "any", p: any, ns: "prod", wantNS: "prod", wantOK: true},
		{name: "any, but not a label", p: any, ns: "\x1b[31mred", wantNS: "\x1b[31mred"},
		{name: "any, cluster-scoped request", p: any, ns: ""},
		{name: "cluster-wide", p: cluster, ns: "whatever", wantOK: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns, ok := tt.p.RequestableNamespace(tt.ns)
			if ns != tt.wantNS || ok != tt.wantOK {
				t.Errorf("RequestableNamespace(%q) = %q, %v; want %q, %v", tt.ns, ns, ok, tt.wantNS, tt.wantOK)
			}
		})
	}
}
