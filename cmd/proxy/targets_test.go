package main

import (
	"bytes"
	"context"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/jit"
)

type anyOptions struct{}

func (anyOptions) Mint(context.Context, broker.Request) (broker.Credential, error) {
	return broker.Credential{}, nil
}
func (anyOptions) ValidateOptions(map[string]string) error { return nil }

// TestCheckPoliciesKinds: an access policy's permissions must be of its
// target's kind; one that is not fails the start, naming both.
func TestCheckPoliciesKinds(t *testing.T) {
	bt := &builtTargets{
		providers: map[string]broker.Provider{"demo/tokenrequest": anyOptions{}, "aws/sts": anyOptions{}, "aws/tokenrequest": anyOptions{}, "demo/sts": anyOptions{}},
		infos:     []jit.TargetInfo{{Name: "demo", Kind: "kubernetes"}, {Name: "aws", Kind: "aws"}},
		names:     []string{"demo", "aws"},
	}
	policy := func(target, perms, provider string) string {
		return "apiVersion: jitproxy.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: p-" + target + "-" + provider + "}\nspec:\n  target: " + target +
			"\n  subjects: {groups: [g]}\n" + perms + "  duration: {max: 1h}\n  credential: {provider: " + provider + "}\n"
	}
	k8s := "  namespaces: [demo]\n  permissions: [{verbs: [get], apiGroups: [\"\"], resources: [pods]}]\n"
	aws := "  permissions: [{actions: [\"s3:GetObject\"], resources: [\"*\"]}]\n"
	tests := []struct {
		name, doc, wantErr string
	}{
		{"kubernetes on kubernetes", policy("demo", k8s, "tokenrequest"), ""},
		{"aws on aws", policy("aws", aws, "sts"), ""},
		{"aws on kubernetes", policy("demo", aws, "sts"), "its permissions are for targets of kind aws, and target demo is of kind kubernetes"},
		{"kubernetes on aws", policy("aws", k8s, "tokenrequest"), "its permissions are for targets of kind kubernetes, and target aws is of kind aws"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, err := jit.ParsePolicies("p.yaml", []byte(tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			set, _ := jit.NewPolicies(ps)
			err = checkPolicies(set, bt, slog.New(slog.DiscardHandler))
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("checkPolicies() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRestConfigRateLimits: jitproxy's own client of an apiserver (the
// TokenRequests) gets the target's client limits, and 100 per second with a
// burst of 200 where they are not set, whether the identity comes from a
// token file or a kubeconfig; never client-go's 5 and 10.
func TestRestConfigRateLimits(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "token", "t")
	writeFile(t, dir, "kubeconfig", `apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`)
	tests := []struct {
		name      string
		target    string
		wantQPS   float32
		wantBurst int
	}{
		{"defaults", "credentials: {token_file: token}", 100, 200},
		{"defaults with a kubeconfig", "credentials: {kubeconfig: kubeconfig}", 100, 200},
		{"both set", "credentials: {token_file: token}\n    client: {qps: 20.5, burst: 40}", 20.5, 40},
		{"qps set", "credentials: {kubeconfig: kubeconfig}\n    client: {qps: 1}", 1, 200},
		{"burst set", "credentials: {token_file: token}\n    client: {burst: 1}", 100, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, dir, "c.yaml", "targets:\n  - name: demo\n    kind: kubernetes\n    hosts: [kubernetes.demo]\n    upstream: https://127.0.0.1:6443\n    "+tt.target+"\n")
			cfg, _, err := serveFlags([]string{"--config", p}, env(nil), &bytes.Buffer{})
			if err != nil {
				t.Fatal(err)
			}
			rc, err := restConfig(cfg.Targets[0])
			if err != nil {
				t.Fatal(err)
			}
			got := []any{rc.QPS, rc.Burst}
			if diff := cmp.Diff([]any{tt.wantQPS, tt.wantBurst}, got); diff != "" {
				t.Errorf("restConfig() QPS, Burst (-want +got):\n%s", diff)
			}
		})
	}
}

// TestAWSConfigFile: the agent's AWS config names every AWS target, with
// the placeholder keys and jitproxy's CA, path style for a fixed upstream,
// and nothing of the session credential.
func TestAWSConfigFile(t *testing.T) {
	ans := jit.SessionAnswer{
		Session:  &jit.Session{ID: "s-1"},
		ProxyURL: "http://s-1:session-secret@127.0.0.1:8080",
		Targets: []jit.TargetInfo{
			{Name: "demo", Kind: "kubernetes", Server: "https://kubernetes.demo"},
			{Name: "minio", Kind: "aws", Region: "us-east-1", PathStyle: true},
			{Name: "prod", Kind: "aws", Region: "eu-west-1", Server: "https://s3.internal.example"},
		},
	}
	got := string(awsConfigFile(ans, "/run/agent/jitproxy-ca.crt"))
	want := `# AWS configuration of jitproxy session s-1. The keys are placeholders:
# jitproxy signs each request anew with a short-lived credential of your grant.

[default]
aws_access_key_id = AKIAJITPROXYAGENTKEY
aws_secret_access_key = jitproxy-placeholder-secret-access-key-not-a-credential
region = us-east-1
ca_bundle = /run/agent/jitproxy-ca.crt
s3 =
    addressing_style = path

[profile minio]
aws_access_key_id = AKIAJITPROXYAGENTKEY
aws_secret_access_key = jitproxy-placeholder-secret-access-key-not-a-credential
region = us-east-1
ca_bundle = /run/agent/jitproxy-ca.crt
s3 =
    addressing_style = path

[profile prod]
aws_access_key_id = AKIAJITPROXYAGENTKEY
aws_secret_access_key = jitproxy-placeholder-secret-access-key-not-a-credential
region = eu-west-1
ca_bundle = /run/agent/jitproxy-ca.crt
endpoint_url = https://s3.internal.example
`
	if got != want {
		t.Errorf("awsConfigFile() =\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "session-secret") {
		t.Error("the AWS config holds the session secret")
	}
}

// TestPrintGrantScope: a grant says its namespace, cluster-wide, or (AWS)
// nothing of namespaces.
func TestPrintGrantScope(t *testing.T) {
	tests := []struct {
		g    jit.Grant
		want string
	}{
		{jit.Grant{ID: "g-1", State: jit.StateActive, Policy: "p", Target: "demo", Namespace: "demo", User: "dev",
			Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}}}}}, "grant g-1: ACTIVE (p on demo, namespace demo, for dev)"},
		{jit.Grant{ID: "g-2", State: jit.StateActive, Policy: "p", Target: "demo", User: "dev",
			Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}}}}}, "grant g-2: ACTIVE (p on demo, cluster-wide, for dev)"},
		{jit.Grant{ID: "g-3", State: jit.StateActive, Policy: "p", Target: "aws", User: "dev",
			Permissions: []access.Permission{{AWS: &access.AWSPermission{Actions: []string{"s3:GetObject"}}}}}, "grant g-3: ACTIVE (p on aws, for dev)"},
	}
	for _, tt := range tests {
		var b strings.Builder
		if err := printGrant(&b, "", &tt.g); err != nil {
			t.Fatal(err)
		}
		if first, _, _ := strings.Cut(b.String(), "\n"); first != tt.want {
			t.Errorf("printGrant() = %q, want %q", first, tt.want)
		}
	}
}

// TestUpstreamTransport: the upstream's certificate is verified against
// ca_file, and a connection opened again resumes the TLS session.
func TestUpstreamTransport(t *testing.T) {
	up := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer up.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: up.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	tr, err := upstreamTransport(caFile)
	if err != nil {
		t.Fatal(err)
	}
	defer tr.CloseIdleConnections()
	var resumed []bool
	for range 2 {
		tr.CloseIdleConnections() // a new connection each time
		resp, err := (&http.Client{Transport: tr}).Get(up.URL)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		resumed = append(resumed, resp.TLS.DidResume)
	}
	if resumed[0] || !resumed[1] {
		t.Errorf("sessions resumed: %v, want [false true]", resumed)
	}

	other, err := upstreamTransport("")
	if err != nil {
		t.Fatal(err)
	}
	defer other.CloseIdleConnections()
	if _, err := (&http.Client{Transport: other}).Get(up.URL); err == nil {
		t.Error("an upstream not signed by the system roots was accepted")
	}
}
