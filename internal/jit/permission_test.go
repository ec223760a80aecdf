package jit

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

const awsPolicy = `apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reports-reader}
spec:
  target: aws
  subjects: {groups: [developers]}
  permissions:
    - actions: [s3:ListBucket, "s3:Get*"]
      resources: ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"]
      regions: [us-east-1]
  duration: {max: 1h}
  credential: {provider: sts, options: {roleArn: "arn:aws:iam::123456789012:role/reports"}}
`

func TestParseAWSPolicy(t *testing.T) {
	ps, err := ParsePolicies("aws.yaml", []byte(awsPolicy))
	if err != nil {
		t.Fatal(err)
	}
	p := ps[0]
	want := []access.Permission{{AWS: &access.AWSPermission{
		Actions: []string{"s3:ListBucket", "s3:Get*"}, Resources: []string{"arn:aws:s3:::reports", "arn:aws:s3:::reports/*"}, Regions: []string{"us-east-1"},
	}}}
	if diff := cmp.Diff(want, p.Permissions); diff != "" {
		t.Errorf("Permissions (-want +got):\n%s", diff)
	}
	if p.Kind != access.KindAWS || !p.ClusterWide {
		t.Errorf("Kind, ClusterWide = %q, %v; want aws, true (AWS grants have no namespace)", p.Kind, p.ClusterWide)
	}
	if ns, ok := p.RequestableNamespace(""); ns != "" || !ok {
		t.Errorf("RequestableNamespace(\"\") = %q, %v", ns, ok)
	}
}

func TestParseAWSPolicyRejects(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(string) string
		wantErr []string
	}{
		{
			name: "namespaces",
			edit: func(s string) string {
				return strings.Replace(s, "  permissions:", "  namespaces: [demo]\n  permissions:", 1)
			},
			wantErr: []string{"spec.namespaces and spec.clusterWide do not apply to AWS permissions"},
		},
		{
			name: "kinds mixed",
			edit: func(s string) string {
				return strings.Replace(s, "  duration:", "    - {verbs: [get], apiGroups: [\"\"], resources: [pods]}\n  duration:", 1)
			},
			wantErr: []string{"spec.permissions[1] is a kubernetes permission, the first is aws"},
		},
		{
			name: "kubernetes fields",
			edit: func(s string) string {
				return strings.Replace(s, "regions: [us-east-1]", "regions: [us-east-1]\n      resourceNames: [x]", 1)
			},
			wantErr: []string{"spec.permissions[0]: verbs, apiGroups, resourceNames and nonResourceURLs are Kubernetes fields"},
		},
		{
			name:    "not an action",
			edit:    func(s string) string { return strings.Replace(s, "s3:ListBucket", "ListBucket", 1) },
			wantErr: []string{`spec.permissions[0].actions[0] "ListBucket" is not an IAM action`},
		},
		{
			name:    "not an ARN",
			edit:    func(s string) string { return strings.Replace(s, `"arn:aws:s3:::reports", `, `"reports", `, 1) },
			wantErr: []string{`spec.permissions[0].resources[0] "reports" is not an ARN`},
		},
		{
			name: "no resources",
			edit: func(s string) string {
				return strings.Replace(s, `      resources: ["arn:aws:s3:::reports", "arn:aws:s3:::reports/*"]`+"\n", "", 1)
			},
			wantErr: []string{"spec.permissions[0].resources is required"},
		},
		{
			name:    "not a region",
			edit:    func(s string) string { return strings.Replace(s, "regions: [us-east-1]", "regions: [Virginia]", 1) },
			wantErr: []string{`spec.permissions[0].regions[0] "Virginia" is not an AWS region`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParsePolicies("aws.yaml", []byte(tt.edit(awsPolicy)))
			if err == nil {
				t.Fatal("ParsePolicies() = nil error")
			}
			for _, w := range tt.wantErr {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
		})
	}
}
