package deploy

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"

	"github.com/jitproxy/jitproxy/test/servers"
)

// releaseNamespace is the namespace the chart is rendered for.
const releaseNamespace = "jitproxy"

// root returns the repository's root directory.
func root(t *testing.T) string {
	t.Helper()
	r, err := servers.Root()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// chartDir is the chart under test.
func chartDir(t *testing.T) string { return filepath.Join(root(t), "deploy", "helm", "jitproxy") }

// valuesSets are the documented values files of the chart (its ci/ directory).
func valuesSets(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values sets under ci/: %v", err)
	}
	return files
}

// renderChart renders the chart with vals as `helm template` would, with
// Helm's Go SDK: values.schema.json is checked on the way, and a failing
// template (`fail`) is an error.
func renderChart(t *testing.T, vals map[string]any) (string, error) {
	t.Helper()
	ch, err := loader.Load(chartDir(t))
	if err != nil {
		t.Fatal(err)
	}
	inst := action.NewInstall(&action.Configuration{})
	inst.DryRun, inst.ClientOnly, inst.Replace = true, true, true
	inst.ReleaseName, inst.Namespace = "jitproxy", releaseNamespace
	inst.KubeVersion = &chartutil.KubeVersion{Version: "v1.34.4", Major: "1", Minor: "34"}
	rel, err := inst.Run(ch, vals)
	if err != nil {
		return "", err
	}
	return rel.Manifest, nil
}

// readValues reads a values file.
func readValues(t *testing.T, path string) map[string]any {
	t.Helper()
	v, err := chartutil.ReadValuesFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return v.AsMap()
}

// buildKustomization builds the kustomization in dir with kustomize's API,
// as `kubectl apply -k` would.
func buildKustomization(t *testing.T, dir string) string {
	t.Helper()
	m, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := m.AsYaml()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// decode splits a multi-document manifest into objects, skipping empty
// documents.
func decode(t *testing.T, manifest string) []*unstructured.Unstructured {
	t.Helper()
	d := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := d.Decode(&m); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("decode manifest: %v\n%s", err, manifest)
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// readManifest reads a YAML file.
func readManifest(t *testing.T, rel ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{root(t)}, rel...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// mintable is namespace -> sorted ServiceAccount names.
type mintable map[string][]string

func (m mintable) add(ns, name string) { m[ns] = append(m[ns], name) }

func (m mintable) normalize() mintable {
	for ns, names := range m {
		sort.Strings(names)
		out := names[:0]
		for i, n := range names {
			if i == 0 || n != names[i-1] {
				out = append(out, n)
			}
		}
		m[ns] = out
	}
	return m
}

// policyMintable is what jitproxy mints tokens for under the access
// policies of target with provider tokenrequest: each serviceAccount in
// serviceAccountNamespace, or else in each of the policy's namespaces.
func policyMintable(t *testing.T, target string, policies []map[string]any, m mintable) {
	t.Helper()
	for _, p := range policies {
		spec, _ := p["spec"].(map[string]any)
		cred, _ := spec["credential"].(map[string]any)
		if spec["target"] != target || cred["provider"] != "tokenrequest" {
			continue
		}
		opts, _ := cred["options"].(map[string]any)
		name, _ := opts["serviceAccount"].(string)
		if ns, ok := opts["serviceAccountNamespace"].(string); ok && ns != "" {
			m.add(ns, name)
			continue
		}
		nss, _ := spec["namespaces"].([]any)
		if len(nss) == 0 {
			t.Fatalf("policy %v mints in any namespace", p["metadata"])
		}
		for _, ns := range nss {
			m.add(ns.(string), name)
		}
	}
}

// policyFiles reads access policy files.
func policyFiles(t *testing.T, files ...string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range decode(t, string(b)) {
			out = append(out, o.Object)
		}
	}
	return out
}

// minters returns, from objects, the ServiceAccounts subject may mint
// tokens for, and fails the test on any rule granting serviceaccounts/token
// without resourceNames or in a ClusterRole.
func minters(t *testing.T, objs []*unstructured.Unstructured) mintable {
	t.Helper()
	m := mintable{}
	for _, o := range objs {
		if o.GetAPIVersion() != "rbac.authorization.k8s.io/v1" || (o.GetKind() != "Role" && o.GetKind() != "ClusterRole") {
			continue
		}
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		for _, r := range rules {
			rule := r.(map[string]any)
			if !grantsToken(rule) {
				continue
			}
			names, _, _ := unstructured.NestedStringSlice(rule, "resourceNames")
			switch {
			case o.GetKind() == "ClusterRole":
				t.Errorf("ClusterRole %s may mint ServiceAccount tokens: %v", o.GetName(), rule)
			case len(names) == 0:
				t.Errorf("Role %s/%s may mint tokens for every ServiceAccount of its namespace", o.GetNamespace(), o.GetName())
			}
			for _, n := range names {
				m.add(o.GetNamespace(), n)
			}
		}
	}
	return m.normalize()
}

// grantsToken reports whether an RBAC rule allows creating ServiceAccount tokens.
func grantsToken(rule map[string]any) bool {
	has := func(key string, want ...string) bool {
		vals, _, _ := unstructured.NestedStringSlice(rule, key)
		for _, v := range vals {
			for _, w := range want {
				if v == w {
					return true
				}
			}
		}
		return false
	}
	return has("apiGroups", "", "*") && has("resources", "serviceaccounts/token", "serviceaccounts/*", "*") && has("verbs", "create", "*")
}

// joinYAML joins documents into one manifest.
func joinYAML(docs ...string) string {
	var b bytes.Buffer
	for _, d := range docs {
		b.WriteString("---\n")
		b.WriteString(d)
		b.WriteString("\n")
	}
	return b.String()
}
