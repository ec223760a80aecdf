package policies

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity/podsecuritytest"
)

// levelLine is the line of kubernetes.rego that sets the Pod Security
// Standards level; the README tells operators to edit it.
const levelLine = `pod_security_level := "baseline"`

// withLevel returns a copy of the shipped policies with the level line set
// to level.
func withLevel(t *testing.T, level string) fs.FS {
	t.Helper()
	files := fstest.MapFS{}
	lines := 0
	err := fs.WalkDir(Authz(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		src, err := fs.ReadFile(Authz(), p)
		if err != nil {
			return err
		}
		lines += strings.Count(string(src), "\n"+levelLine+"\n")
		files[p] = &fstest.MapFile{Data: []byte(strings.ReplaceAll(string(src), levelLine, fmt.Sprintf("pod_security_level := %q", level)))}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if lines != 1 {
		t.Fatalf("the policies have %d lines %q, want 1", lines, levelLine)
	}
	return files
}

var admin = authz.Grant{
	ID: "g-admin", Policy: "namespace-admin", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{"*"}, Resources: []string{"*"}}}},
}

func create(group, version, resource string) access.Action {
	path := "/api/v1/namespaces/demo/" + resource
	if group != "" {
		path = "/apis/" + group + "/" + version + "/namespaces/demo/" + resource
	}
	return access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "POST", Path: path, Kubernetes: &access.KubernetesAction{Verb: "create", ResourceRequest: true, APIGroup: group, APIVersion: version, Resource: resource, Namespace: "demo"}}
}

// asPod and asDeployment make the object the apiserver would store from a
// fixture's pod: the pod itself, or a Deployment with the pod as template.
func asPod(pod map[string]any) map[string]any {
	out := maps.Clone(pod)
	out["metadata"] = withEntry(pod["metadata"], "namespace", "demo")
	return out
}

func asDeployment(pod map[string]any) map[string]any {
	meta, _ := pod["metadata"].(map[string]any)
	labels := map[string]any{"app": meta["name"]}
	return map[string]any{
		"apiVersion": "apps/v1", "kind": "Deployment",
		"metadata": map[string]any{"namespace": "demo", "name": meta["name"]},
		"spec": map[string]any{
			"replicas": 1.0, "selector": map[string]any{"matchLabels": labels},
			"template": map[string]any{"metadata": withEntry(meta, "labels", labels), "spec": pod["spec"]},
		},
	}
}

// withEntry returns a copy of the object m with m[k] = v.
func withEntry(m any, k string, v any) map[string]any {
	out := maps.Clone(m.(map[string]any))
	out[k] = v
	return out
}

// TestAdmissionFixtures runs the shipped policies through the engine on the
// pods k8s.io/pod-security-admission tests itself with, given a grant that
// permits the create: at the shipped level (baseline) and with the level
// line switched to restricted, a pod that fails the level is forbidden, as
// a Pod and as a Deployment's template, and one that meets it is allowed.
func TestAdmissionFixtures(t *testing.T) {
	tests := []struct {
		name     string
		level    string
		policies fs.FS
	}{
		{name: "shipped baseline", level: "baseline", policies: Authz()},
		{name: "switched to restricted", level: "restricted", policies: withLevel(t, "restricted")},
	}
	writes := []struct {
		name   string
		action access.Action
		object func(pod map[string]any) map[string]any
		where  string
	}{
		{name: "pod", action: create("", "v1", "pods"), object: asPod, where: "pod"},
		{name: "deployment", action: create("apps", "v1", "deployments"), object: asDeployment, where: "pod template at spec.template"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := authz.New(context.Background(), authz.Config{Policies: tt.policies, Builtins: builtins(t)})
			if err != nil {
				t.Fatal(err)
			}
			version, fixtures := podsecuritytest.Fixtures(t, tt.level)
			t.Logf("%d fixtures of %s %s", len(fixtures), tt.level, version)
			prefix := fmt.Sprintf("violates PodSecurity %q: ", tt.level+":latest")
			for _, f := range fixtures {
				for _, w := range writes {
					t.Run(f.Name+"/"+w.name, func(t *testing.T) {
						d, err := e.Decide(context.Background(), authz.Input{
							Action: w.action, Object: w.object(f.Pod), Grants: authz.NewGrantSet(admin),
						})
						if err != nil {
							t.Fatal(err)
						}
						if d.Allowed != f.Pass {
							t.Errorf("Allowed = %t, want %t; reasons: %q", d.Allowed, f.Pass, d.Reasons)
						}
						for _, r := range d.Reasons {
							if !strings.HasPrefix(r, w.where+" "+prefix) && r != "permitted by grant g-admin" {
								t.Errorf("reason %q is neither the grant nor %q", r, w.where+" "+prefix+"...")
							}
						}
					})
				}
			}
		})
	}
}
