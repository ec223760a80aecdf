package intercept

import (
	"context"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/intercept/aws"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
)

func TestExplain(t *testing.T) {
	accessPolicies, err := jit.LoadPolicies(policies.Access())
	if err != nil {
		t.Fatal(err)
	}
	ps := PolicySet{Decider: newEngine(t, nil), Access: accessPolicies}
	dev := access.Caller{User: "dev", Groups: []string{"developers"}}
	kubeAction := func(verb, ns, resource, sub string) access.Action {
		return access.Action{Kubernetes: &access.KubernetesAction{Verb: verb, ResourceRequest: true, APIVersion: "v1", Resource: resource, Subresource: sub, Namespace: ns, Name: "x"}}
	}
	grant := func(policy, ns string) *jit.Grant {
		p := accessPolicies.Get(policy)
		return &jit.Grant{ID: "g-" + policy, Policy: policy, Target: p.Target, Namespace: ns, Permissions: p.Permissions}
	}
	execEverywhere := &jit.Grant{ID: "g-exec", Policy: "debugger", Target: "demo", Permissions: []access.Permission{
		{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods/exec"}}},
	}}
	s3Get := access.Action{AWS: &access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "us-east-1", Resources: []string{"arn:aws:s3:::reports/q3.csv"}}}
	tests := []struct {
		name        string
		q           Question
		wantAllowed bool
		wantGrants  []string
		wantReasons []string
		wantHint    []string // in the message, in order
	}{
		{
			name:        "allowed with a grant",
			q:           Question{Protocol: kube.New(), Target: "demo", Caller: dev, Action: kubeAction("get", "demo", "pods", ""), Grants: []*jit.Grant{grant("pod-reader", "demo")}},
			wantAllowed: true,
			wantGrants:  []string{"g-pod-reader"},
			wantReasons: []string{"permitted by grant g-pod-reader"},
		},
		{
			name:        "denied with the policies that would allow it",
			q:           Question{Protocol: kube.New(), Target: "demo", Caller: dev, Action: kubeAction("get", "demo", "pods", "")},
			wantReasons: []string{"no active grant permits this request"},
			wantHint:    []string{`jitproxy denied get pods "x" in namespace "demo"`, "Access policies that would allow it: pod-reader", "jitproxy grant request pod-reader --namespace demo"},
		},
		{
			name:        "grant in another namespace",
			q:           Question{Protocol: kube.New(), Target: "demo", Caller: dev, Action: kubeAction("get", "demo", "pods", ""), Grants: []*jit.Grant{grant("pod-reader", "staging")}},
			wantReasons: []string{"no active grant permits this request"},
			wantHint:    []string{"pod-reader"},
		},
		{
			name:        "forbid beats permit",
			q:           Question{Protocol: kube.New(), Target: "demo", Caller: dev, Action: kubeAction("create", "kube-system", "pods", "exec"), Grants: []*jit.Grant{execEverywhere}},
			wantGrants:  []string{"g-exec"},
			wantReasons: []string{"exec, attach and port-forward into kube-system are forbidden"},
			wantHint:    []string{"are forbidden."},
		},
		{
			name:        "AWS action allowed",
			q:           Question{Protocol: aws.New(aws.Config{}), Target: "aws", Caller: dev, Action: s3Get, Grants: []*jit.Grant{grant("reports-reader", "")}},
			wantAllowed: true,
			wantGrants:  []string{"g-reports-reader"},
			wantReasons: []string{"permitted by grant g-reports-reader"},
		},
		{
			name:        "AWS action denied",
			q:           Question{Protocol: aws.New(aws.Config{}), Target: "aws", Caller: dev, Action: s3Get},
			wantReasons: []string{"no active grant permits this request"},
			wantHint:    []string{"s3:GetObject on arn:aws:s3:::reports/q3.csv in us-east-1", "reports-reader, reports-writer"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			q.Policies = ps
			e, err := Explain(context.Background(), q)
			if err != nil {
				t.Fatal(err)
			}
			got := struct {
				Allowed         bool
				Grants, Reasons []string
			}{e.Decision.Allowed, e.Decision.GrantIDs, e.Decision.Reasons}
			want := struct {
				Allowed         bool
				Grants, Reasons []string
			}{tt.wantAllowed, tt.wantGrants, tt.wantReasons}
			if diff := cmp.Diff(want, got, cmpEmpty); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
			if e.Input.Action.Target != q.Target || e.Input.Action.Kind != q.Protocol.Kind() {
				t.Errorf("input action target, kind = %q, %q; want %q, %q", e.Input.Action.Target, e.Input.Action.Kind, q.Target, q.Protocol.Kind())
			}
			if (e.Message == "") != tt.wantAllowed {
				t.Errorf("message %q for allowed=%t", e.Message, tt.wantAllowed)
			}
			rest := e.Message
			for _, s := range tt.wantHint {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("message lacks %q (in order):\n%s", s, e.Message)
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

// cmpEmpty treats nil and empty slices alike.
var cmpEmpty = cmp.FilterValues(func(a, b []string) bool { return len(a) == 0 && len(b) == 0 }, cmp.Ignore())
