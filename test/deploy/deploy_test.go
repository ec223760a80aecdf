// Package deploy tests the deployment manifests: the Helm chart
// deploy/helm/jitproxy with each documented values set (its ci/ files),
// the Kustomize runner base with the jitproxy sidecar component
// (deploy/kustomize/example) and the demo setup deploy/demo/cluster.yaml.
// Each is checked for least privilege (token minting only for the
// ServiceAccounts the access policies name) and hardened pods, and applied
// to a real kube-apiserver (TestApply).
package deploy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestChartValuesSets(t *testing.T) {
	for _, file := range valuesSets(t) {
		t.Run(filepath.Base(file), func(t *testing.T) {
			vals := readValues(t, file)
			manifest, err := renderChart(t, vals)
			if err != nil {
				t.Fatal(err)
			}
			objs := decode(t, manifest)
			checkPods(t, objs, "jitproxy")

			// Minting: exactly what the values' access policies of the
			// cluster's target name, and the discovery identity.
			want := mintable{}
			cluster := vals["cluster"].(map[string]any)
			var policies []map[string]any
			for _, p := range vals["accessPolicies"].(map[string]any) {
				policies = append(policies, p.(map[string]any))
			}
			policyMintable(t, cluster["target"].(string), policies, want)
			if d, _ := cluster["discovery"].(map[string]any); d["disabled"] != true {
				want.add("default", "default")
			}
			if diff := cmp.Diff(want.normalize(), minters(t, objs)); diff != "" {
				t.Errorf("ServiceAccounts jitproxy may mint tokens for (-policies +RBAC):\n%s", diff)
			}

			replicas := vals["replicaCount"].(float64)
			if got := count(objs, "PodDisruptionBudget"); (replicas > 1) != (got == 1) {
				t.Errorf("replicas %v, %d PodDisruptionBudgets", replicas, got)
			}
			cfg := configOf(t, objs)
			if replicas > 1 && !strings.Contains(cfg, "address: redis.") {
				t.Errorf("replicas share no Redis:\n%s", cfg)
			}
		})
	}
}

// TestChartMatchesShippedPolicies checks that the documented values set
// carries the shipped access policies of target demo (policies/access),
// so that its RBAC is that of the policies jitproxy ships.
func TestChartMatchesShippedPolicies(t *testing.T) {
	vals := readValues(t, filepath.Join(chartDir(t), "ci", "ha-values.yaml"))
	got := map[string]any{}
	for name, p := range vals["accessPolicies"].(map[string]any) {
		got[name] = p
	}
	files, _ := filepath.Glob(filepath.Join(root(t), "policies", "access", "*.yaml"))
	want := map[string]any{}
	for _, f := range files {
		for _, p := range policyFiles(t, f) {
			if p["spec"].(map[string]any)["target"] == "demo" {
				want[filepath.Base(f)] = p
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ci/ha-values.yaml accessPolicies differ from policies/access (-shipped +values):\n%s", diff)
	}
}

func TestChartRefuses(t *testing.T) {
	noNamespaces := map[string]any{
		"apiVersion": "jitproxy.dev/v1alpha1", "kind": "AccessPolicy", "metadata": map[string]any{"name": "anywhere"},
		"spec": map[string]any{"target": "cluster", "credential": map[string]any{"provider": "tokenrequest", "options": map[string]any{"serviceAccount": "x"}}},
	}
	tests := []struct {
		name    string
		set     map[string]any
		wantErr string
	}{
		{"replicas without Redis", map[string]any{"replicaCount": 3, "redis": map[string]any{"address": ""}}, "address"},
		{"replicas without a shared CA", map[string]any{"replicaCount": 2, "ca": map[string]any{"secretName": ""}}, "secretName"},
		{"a minter for every namespace", map[string]any{"accessPolicies": map[string]any{"anywhere.yaml": noNamespaces}}, "as good as cluster-admin"},
		{"an unknown value", map[string]any{"replicas": 2}, "replicas"},
		{"a key the chart owns in config", map[string]any{"config": map[string]any{"state_dir": "/tmp"}}, "config"},
	}
	base := readValues(t, filepath.Join(chartDir(t), "ci", "single-values.yaml"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vals := merge(base, tt.set)
			_, err := renderChart(t, vals)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("render: %v, want an error about %q", err, tt.wantErr)
			}
		})
	}
}

func TestKustomizeSidecar(t *testing.T) {
	dir := filepath.Join(root(t), "deploy", "kustomize")
	buildKustomization(t, filepath.Join(dir, "base"))
	objs := decode(t, buildKustomization(t, filepath.Join(dir, "example")))
	checkPods(t, objs, "jitproxy")

	var sidecars int
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		inits, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "initContainers")
		for _, c := range inits {
			c := c.(map[string]any)
			if c["name"] != "jitproxy" {
				continue
			}
			sidecars++
			if c["restartPolicy"] != "Always" || c["startupProbe"] == nil {
				t.Errorf("jitproxy init container of %s is not a native sidecar with a startup probe: %v", o.GetName(), c)
			}
		}
	}
	if sidecars != 1 {
		t.Errorf("%d jitproxy sidecars, want 1", sidecars)
	}

	// Minting: exactly the access policies' ServiceAccounts (from the
	// generated ConfigMap) and the discovery identity.
	want := mintable{"default": {"default"}}
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" && strings.HasPrefix(o.GetName(), "jitproxy-access-policies") {
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for _, d := range data {
				for _, p := range decode(t, d) {
					policyMintable(t, "cluster", []map[string]any{p.Object}, want)
				}
			}
		}
	}
	if diff := cmp.Diff(want.normalize(), minters(t, objs)); diff != "" {
		t.Errorf("ServiceAccounts jitproxy may mint tokens for (-policies +RBAC):\n%s", diff)
	}
}

// TestDemoMinters checks that the demo setup lets jitproxy mint tokens for
// exactly the ServiceAccounts the shipped access policies name and the
// discovery identity.
func TestDemoMinters(t *testing.T) {
	objs := decode(t, readManifest(t, "deploy", "demo", "cluster.yaml"))
	files, _ := filepath.Glob(filepath.Join(root(t), "policies", "access", "*.yaml"))
	want := mintable{"default": {"default"}}
	policyMintable(t, "demo", policyFiles(t, files...), want)
	if diff := cmp.Diff(want.normalize(), minters(t, objs)); diff != "" {
		t.Errorf("ServiceAccounts jitproxy may mint tokens for (-policies +RBAC):\n%s", diff)
	}
}

// checkPods checks every pod template: no ServiceAccount token mounted by
// default, the token projected into the container named tokenHolder
// only, and every container non-root, with a read-only root filesystem,
// no capabilities, no privilege escalation and seccomp RuntimeDefault.
func checkPods(t *testing.T, objs []*unstructured.Unstructured, tokenHolder string) {
	t.Helper()
	var pods int
	for _, o := range objs {
		path := []string{"spec", "template", "spec"}
		switch o.GetKind() {
		case "Deployment", "StatefulSet", "DaemonSet", "Job":
		case "Pod":
			path = []string{"spec"}
		default:
			continue
		}
		pods++
		spec, _, _ := unstructured.NestedMap(o.Object, path...)
		where := o.GetKind() + " " + o.GetName()
		if spec["automountServiceAccountToken"] != false {
			t.Errorf("%s: automountServiceAccountToken is not false", where)
		}
		podSeccomp, _, _ := unstructured.NestedString(spec, "securityContext", "seccompProfile", "type")
		podNonRoot, _, _ := unstructured.NestedBool(spec, "securityContext", "runAsNonRoot")
		tokenVolumes := map[string]bool{}
		vols, _, _ := unstructured.NestedSlice(spec, "volumes")
		for _, v := range vols {
			v := v.(map[string]any)
			sources, _, _ := unstructured.NestedSlice(v, "projected", "sources")
			for _, s := range sources {
				sat, ok := s.(map[string]any)["serviceAccountToken"].(map[string]any)
				// A token without an audience is one the apiserver accepts.
				if ok && sat["audience"] == nil {
					tokenVolumes[v["name"].(string)] = true
				}
			}
		}
		var containers []any
		for _, k := range []string{"initContainers", "containers"} {
			cs, _, _ := unstructured.NestedSlice(spec, k)
			containers = append(containers, cs...)
		}
		for _, c := range containers {
			c := c.(map[string]any)
			name := fmt.Sprintf("%s container %s", where, c["name"])
			sc, _ := c["securityContext"].(map[string]any)
			seccomp, _, _ := unstructured.NestedString(sc, "seccompProfile", "type")
			drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop")
			switch {
			case sc["runAsNonRoot"] != true && !podNonRoot:
				t.Errorf("%s may run as root", name)
			case sc["readOnlyRootFilesystem"] != true:
				t.Errorf("%s: root filesystem writable", name)
			case sc["allowPrivilegeEscalation"] != false:
				t.Errorf("%s: privilege escalation allowed", name)
			case len(drop) != 1 || drop[0] != "ALL" || sc["capabilities"].(map[string]any)["add"] != nil:
				t.Errorf("%s: capabilities not all dropped", name)
			case seccomp != "RuntimeDefault" && (seccomp != "" || podSeccomp != "RuntimeDefault"):
				t.Errorf("%s: seccomp profile not RuntimeDefault", name)
			}
			mounts, _, _ := unstructured.NestedSlice(c, "volumeMounts")
			for _, m := range mounts {
				if tokenVolumes[m.(map[string]any)["name"].(string)] && c["name"] != tokenHolder {
					t.Errorf("%s holds the ServiceAccount token", name)
				}
			}
		}
	}
	if pods == 0 {
		t.Error("no pods")
	}
}

// configOf returns jitproxy.yaml from the rendered ConfigMap.
func configOf(t *testing.T, objs []*unstructured.Unstructured) string {
	t.Helper()
	for _, o := range objs {
		if o.GetKind() == "ConfigMap" {
			if s, ok, _ := unstructured.NestedString(o.Object, "data", "jitproxy.yaml"); ok {
				return s
			}
		}
	}
	t.Fatal("no jitproxy.yaml")
	return ""
}

func count(objs []*unstructured.Unstructured, kind string) int {
	n := 0
	for _, o := range objs {
		if o.GetKind() == kind {
			n++
		}
	}
	return n
}

// merge returns base with set merged in, maps recursively.
func merge(base, set map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range set {
		if bm, ok := out[k].(map[string]any); ok {
			if sm, ok := v.(map[string]any); ok {
				out[k] = merge(bm, sm)
				continue
			}
		}
		out[k] = v
	}
	return out
}
