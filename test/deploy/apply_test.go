package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestApply applies the manifests to a real kube-apiserver (etcd and
// kube-apiserver of test/servers, which runs no controllers), with kubectl
// and strict field validation, so that they are valid Kubernetes and not
// only YAML:
//   - deploy/demo/cluster.yaml and the Kustomize example are applied for
//     real to the fresh cluster, as the README says to: they create what
//     they need;
//   - each values set of the chart is applied with --dry-run=server (the
//     apiserver decodes, defaults, validates and admits every object and
//     stores nothing) into namespaces that exist, as `helm install
//     --create-namespace` would; the first is then applied for real;
//   - RBAC is asked with `kubectl auth can-i` as jitproxy's identities:
//     each may mint a token for the ServiceAccounts its policies name and
//     for no other.
func TestApply(t *testing.T) {
	kubectl := os.Getenv("KUBECTL")
	if kubectl == "" {
		var err error
		if kubectl, err = servers.Bin("kubectl"); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	env, err := servers.StartEnv(ctx, dir, servers.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		env.Stop()
		if t.Failed() {
			for _, p := range env.Processes() {
				t.Logf("%s log, last lines:\n%s", p.Name, p.Tail(20))
			}
		}
	})
	n := 0
	apply := func(t *testing.T, manifest string, args ...string) {
		t.Helper()
		n++
		f := filepath.Join(dir, "manifest-"+strings.Repeat("x", n)+".yaml")
		if err := os.WriteFile(f, []byte(manifest), 0o600); err != nil {
			t.Fatal(err)
		}
		out, err := env.Kubectl(ctx, kubectl, append([]string{"apply", "--validate=strict", "-f", f}, args...)...)
		if err != nil {
			t.Fatal(err)
		}
		// Warnings: deprecated fields, and pod templates that Pod Security
		// Admission would refuse in a namespace enforcing restricted.
		if strings.Contains(out, "Warning:") {
			t.Errorf("kubectl apply warned:\n%s", out)
		}
	}
	canI := func(t *testing.T, as, namespace, serviceAccount string, want bool) {
		t.Helper()
		out, _ := env.Kubectl(ctx, kubectl, "auth", "can-i", "create", "serviceaccounts/"+serviceAccount, "--subresource=token", "-n", namespace, "--as="+as)
		if got := lastLine(out) == "yes"; got != want {
			t.Errorf("%s may mint a token for %s/%s: %v, want %v (%s)", as, namespace, serviceAccount, got, want, strings.TrimSpace(out))
		}
	}

	t.Run("demo", func(t *testing.T) {
		apply(t, readManifest(t, "deploy", "demo", "cluster.yaml"))
		canI(t, "jitproxy", "demo", "jitproxy-pod-reader", true)
		canI(t, "jitproxy", "staging", "jitproxy-namespace-editor", true)
		canI(t, "jitproxy", "default", "default", true)
		canI(t, "jitproxy", "demo", "default", false)
		canI(t, "jitproxy", "ci", "jitproxy-runner", false)
		canI(t, "jitproxy", "kube-system", "default", false)
	})

	t.Run("kustomize", func(t *testing.T) {
		apply(t, buildKustomization(t, filepath.Join(root(t), "deploy", "kustomize", "example")))
		const sa = "system:serviceaccount:agents:agent-runner"
		canI(t, sa, "agents-sandbox", "jitproxy-pod-reader", true)
		canI(t, sa, "default", "default", true)
		canI(t, sa, "agents", "agent-runner", false)
		canI(t, sa, "demo", "jitproxy-pod-reader", false)
	})

	t.Run("chart", func(t *testing.T) {
		// The release namespace and those the values name; demo and
		// staging come from the demo setup.
		// The release namespace enforces the Pod Security Standard
		// restricted: a pod template that breaks it is warned about.
		apply(t, namespaces(releaseNamespace, "agents", "ci", "tools"))
		for i, file := range valuesSets(t) {
			t.Run(filepath.Base(file), func(t *testing.T) {
				manifest, err := renderChart(t, readValues(t, file))
				if err != nil {
					t.Fatal(err)
				}
				apply(t, manifest, "--dry-run=server")
				if i > 0 {
					return
				}
				apply(t, manifest)
				sa := "system:serviceaccount:" + releaseNamespace + ":jitproxy"
				canI(t, sa, "demo", "jitproxy-pod-reader", true)
				canI(t, sa, "staging", "jitproxy-namespace-editor", true)
				canI(t, sa, "default", "default", true)
				canI(t, sa, "demo", "default", false)
				canI(t, sa, releaseNamespace, "jitproxy", false)
				out, _ := env.Kubectl(ctx, kubectl, "auth", "can-i", "create", "tokenreviews.authentication.k8s.io", "--as="+sa)
				if lastLine(out) != "yes" {
					t.Errorf("jitproxy may not review tokens: %s", out)
				}
			})
		}
	})
}

// namespaces is a manifest of Namespaces enforcing the Pod Security
// Standard restricted.
func namespaces(names ...string) string {
	var docs []string
	for _, n := range names {
		docs = append(docs, "apiVersion: v1\nkind: Namespace\nmetadata: {name: "+n+", labels: {pod-security.kubernetes.io/enforce: restricted}}")
	}
	return joinYAML(docs...)
}

// lastLine is the last line of kubectl's output, past its warnings.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
