package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
)

func TestKubeRequest(t *testing.T) {
	tests := []struct {
		desc string
		want access.KubernetesAction
	}{
		{"get pods -n demo", access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		{"get pods web -n demo", access.KubernetesAction{Verb: "get", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo", Name: "web"}},
		{"get pods/web --namespace=demo", access.KubernetesAction{Verb: "get", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo", Name: "web"}},
		{"watch pods -n demo", access.KubernetesAction{Verb: "watch", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		{"delete deployments.apps web -n demo", access.KubernetesAction{Verb: "delete", ResourceRequest: true, APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Namespace: "demo", Name: "web"}},
		{"deletecollection pods -n demo", access.KubernetesAction{Verb: "deletecollection", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		{"create pods web -n kube-system --subresource exec", access.KubernetesAction{Verb: "create", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Subresource: "exec", Namespace: "kube-system", Name: "web"}},
		{"list nodes", access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "nodes"}},
		{"GET /version", access.KubernetesAction{Verb: "get"}},
		{"POST /apis/apps/v1/namespaces/demo/deployments", access.KubernetesAction{Verb: "create", ResourceRequest: true, APIGroup: "apps", APIVersion: "v1", Resource: "deployments", Namespace: "demo"}},
	}
	for _, tt := range tests {
		t.Run(tt.desc, func(t *testing.T) {
			r, err := kubeRequest(tt.desc, "v1")
			if err != nil {
				t.Fatal(err)
			}
			a, err := kube.New().Classify(r, nil)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *a.Kubernetes); diff != "" {
				t.Errorf("classified (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "get", "frobnicate pods", "delete pods -n demo", "get pods --output yaml"} {
		if _, err := kubeRequest(bad, "v1"); err == nil {
			t.Errorf("kubeRequest(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseAWSAction(t *testing.T) {
	tests := []struct {
		in   string
		want access.AWSAction
	}{
		{"s3:GetObject arn:aws:s3:::reports/q3.csv us-east-1", access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "us-east-1", Resources: []string{"arn:aws:s3:::reports/q3.csv"}}},
		{"sts:GetCallerIdentity", access.AWSAction{Service: "sts", Action: "sts:GetCallerIdentity"}},
		{"dynamodb:GetItem eu-west-1 arn:aws:dynamodb:eu-west-1:123456789012:table/orders", access.AWSAction{Service: "dynamodb", Action: "dynamodb:GetItem", Region: "eu-west-1", Account: "123456789012", Resources: []string{"arn:aws:dynamodb:eu-west-1:123456789012:table/orders"}}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			a, err := parseAWSAction(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, *a.AWS); diff != "" {
				t.Errorf("action (-want +got):\n%s", diff)
			}
		})
	}
	for _, bad := range []string{"", "GetObject", "s3:GetObject us-east-1 eu-west-1"} {
		if _, err := parseAWSAction(bad); err == nil {
			t.Errorf("parseAWSAction(%q) succeeded, want an error", bad)
		}
	}
}

// writeAuditFile writes events as the file sink writes them, natively.
func writeAuditFile(t *testing.T, events ...audit.Event) string {
	t.Helper()
	var b bytes.Buffer
	for i, e := range events {
		line, err := audit.EncodeNative(e, audit.Chain{Seq: uint64(i + 1)})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	p := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPolicyEval(t *testing.T) {
	// An access policy that permits exec anywhere, to show forbid beat it.
	dir := t.TempDir()
	if err := os.CopyFS(filepath.Join(dir, "access"), os.DirFS("../../policies/access")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(dir, "access"), "debugger.yaml", `apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: debugger}
spec:
  target: demo
  subjects: {groups: [sre]}
  clusterWide: true
  permissions:
    - {verbs: ["*"], apiGroups: [""], resources: [pods/exec]}
  duration: {default: 30m, max: 1h}
  credential: {provider: kubernetes}
`)
	debugConfig := writeFile(t, dir, "jitproxy.yaml", "policies: {access_dir: access}\n")
	recorded := audit.Event{
		Type: audit.TypeRequest, Time: time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC), RequestID: "0123456789abcdef",
		Caller: &access.Caller{Session: "s1", Agent: "claude", User: "dev", Groups: []string{"developers"}},
		Action: &access.Action{Kind: "kubernetes", Target: "demo", Method: "DELETE", Path: "/api/v1/namespaces/demo/pods/web",
			Kubernetes: &access.KubernetesAction{Verb: "delete", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo", Name: "web"}},
		Decision: &audit.Decision{Reasons: []string{"no active grant permits this request"}},
	}
	auditFile := writeAuditFile(t, audit.Event{Type: audit.TypeSessionCreated, RequestID: "other"}, recorded)
	tests := []struct {
		name    string
		args    []string
		wantErr string
		want    []string // lines of the output, in order
	}{
		{
			name: "allowed with a grant",
			args: []string{"--user", "dev", "--groups", "developers", "--grant", "pod-reader:demo", "get pods -n demo"},
			want: []string{`ALLOW list pods in namespace "demo" (target demo, user dev)`, "permit: g1-pod-reader", "reasons: permitted by grant g1-pod-reader"},
		},
		{
			name: "denied with a hint naming the policy",
			args: []string{"--target", "demo", "--user", "dev", "--groups", "developers", "get", "pods", "-n", "demo"},
			want: []string{`DENY list pods in namespace "demo"`, "permit: none", "denial: jitproxy denied list pods in namespace \"demo\": no active grant permits this request. Access policies that would allow it: pod-reader, namespace-editor. Request a grant with: jitproxy grant request pod-reader --namespace demo"},
		},
		{
			name: "forbid beats permit",
			args: []string{"--config", debugConfig, "--user", "ops", "--groups", "sre", "--grant", "debugger", "create pods web -n kube-system --subresource exec"},
			want: []string{`DENY create pods/exec "web" in namespace "kube-system"`, "permit: g1-debugger", "forbid: exec, attach and port-forward into kube-system are forbidden"},
		},
		{
			name: "AWS action",
			args: []string{"--user", "dev", "--groups", "developers", "--grant", "reports-reader", "--aws", "s3:GetObject arn:aws:s3:::reports/q3.csv us-east-1"},
			want: []string{"ALLOW s3:GetObject on arn:aws:s3:::reports/q3.csv in us-east-1 (target aws, user dev)", "permit: g1-reports-reader"},
		},
		{
			name: "AWS action denied",
			args: []string{"--target", "aws", "--user", "dev", "--groups", "developers", "--aws", "s3:PutObject arn:aws:s3:::reports/q3.csv us-east-1"},
			want: []string{"DENY s3:PutObject", "Access policies that would allow it: reports-writer."},
		},
		{
			name: "recorded request",
			args: []string{"--request-id", "0123456789abcdef", "--audit-file", auditFile, "--grant", "namespace-editor:demo", "--explain"},
			want: []string{`ALLOW delete pods "web" in namespace "demo" (target demo, user dev)`, "permit: g1-namespace-editor", `recorded: allowed=false reasons=["no active grant permits this request"]`, `"session": "s1"`},
		},
		{
			name: "explained in full",
			args: []string{"--user", "dev", "--grant", "pod-reader:demo", "--explain=full", "get pods -n demo"},
			want: []string{"ALLOW list pods", "input: {", "explanation (full):", "Enter data.jitproxy.authz.permit", "kubernetes.rego:"},
		},
		{name: "bad explain level", args: []string{"--target", "demo", "--explain=all", "get pods"}, wantErr: "--explain=full"},
		{name: "unknown request", args: []string{"--request-id", "nope", "--audit-file", auditFile}, wantErr: "no request nope"},
		{name: "unknown policy", args: []string{"--target", "demo", "--grant", "nope", "get pods"}, wantErr: `no access policy "nope"`},
		{name: "two requests", args: []string{"--aws", "s3:GetObject", "get pods"}, wantErr: "usage"},
		{name: "no target", args: []string{"get pods"}, wantErr: "--target is required"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out, errOut bytes.Buffer
			err := run(context.Background(), append([]string{"policy", "eval"}, tt.args...), env(nil), &out, &errOut)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.wantErr, out.String())
			}
			rest := out.String()
			for _, s := range tt.want {
				i := strings.Index(rest, s)
				if i < 0 {
					t.Fatalf("output lacks %q (in order):\n%s", s, out.String())
				}
				rest = rest[i+len(s):]
			}
		})
	}
}

// FuzzEvalRequest: no description of a request makes the parsers or the
// classification panic.
func FuzzEvalRequest(f *testing.F) {
	for _, s := range []string{"get pods -n demo", "delete deployments.apps/web -n demo", "GET /api/v1/pods", "create pods x --subresource=exec", "s3:GetObject arn:aws:s3:::b/k us-east-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := kubeRequest(s, "v1"); err == nil {
			kube.New().Classify(r, nil)
		}
		parseAWSAction(s)
	})
}
