package podsecurity_test

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/rego"
	"k8s.io/pod-security-admission/policy"

	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity/podsecuritytest"
)

type violation struct {
	Check  string `json:"check"`
	Reason string `json:"reason"`
	Detail string `json:"detail"`
}

// podSecurity returns a function that calls jitproxy.pod_security the way
// policies do. The query runs without strict built-in errors: the builtin
// must fail the evaluation by itself.
func podSecurity(t *testing.T) func(t *testing.T, level, template any) ([]violation, error) {
	t.Helper()
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	pq, err := rego.New(
		rego.Query(`violations := jitproxy.pod_security(input.level, input.template)`),
		ps.Builtin().Rego(),
	).PrepareForEval(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return func(t *testing.T, level, template any) ([]violation, error) {
		t.Helper()
		rs, err := pq.Eval(context.Background(), rego.EvalInput(map[string]any{"level": level, "template": template}))
		if err != nil {
			return nil, err
		}
		if len(rs) != 1 {
			t.Fatalf("got %d results, want 1", len(rs))
		}
		b, err := json.Marshal(rs[0].Bindings["violations"])
		if err != nil {
			t.Fatal(err)
		}
		var out []violation
		if err := json.Unmarshal(b, &out); err != nil {
			t.Fatal(err)
		}
		return out, nil
	}
}

// overriders maps the lower-cased ID of each baseline check to the
// restricted checks that replace it at the restricted level, as the library
// declares them.
func overriders() map[string][]string {
	out := map[string][]string{}
	for _, c := range policy.DefaultChecks() {
		for _, id := range c.Versions[len(c.Versions)-1].OverrideCheckIDs {
			key := strings.ToLower(string(id))
			out[key] = append(out[key], strings.ToLower(string(c.ID)))
		}
	}
	return out
}

// TestFixtures checks the builtin against the library's own test pods: a
// pass pod has no violation at its level, and a fail pod has at least
// one, from the check it was made for (or, at restricted, from the
// restricted check that replaces that baseline check).
func TestFixtures(t *testing.T) {
	call := podSecurity(t)
	tests := []struct {
		name       string
		level      string
		overriders map[string][]string
	}{
		{name: "baseline", level: "baseline"},
		{name: "restricted", level: "restricted", overriders: overriders()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			version, fixtures := podsecuritytest.Fixtures(t, tt.level)
			t.Logf("%d fixtures of %s %s", len(fixtures), tt.level, version)
			for _, f := range fixtures {
				t.Run(f.Name, func(t *testing.T) {
					template := map[string]any{"metadata": f.Pod["metadata"], "spec": f.Pod["spec"]}
					got, err := call(t, tt.level, template)
					if err != nil {
						t.Fatal(err)
					}
					if allowed := len(got) == 0; allowed != f.Pass {
						t.Errorf("allowed = %t, want %t; violations: %+v", allowed, f.Pass, got)
					}
					checks := append([]string{f.Check()}, tt.overriders[f.Check()]...)
					attributed := f.Pass || slices.ContainsFunc(got, func(v violation) bool {
						return slices.Contains(checks, strings.ToLower(v.Check))
					})
					if !attributed {
						t.Errorf("violations %+v name none of the checks %q", got, checks)
					}
				})
			}
		})
	}
}

func TestPodSecurity(t *testing.T) {
	call := podSecurity(t)
	spec := func(pod map[string]any, containers ...map[string]any) map[string]any {
		pod["containers"] = containers
		return map[string]any{"spec": pod}
	}
	app := map[string]any{"name": "app", "image": "registry.k8s.io/pause"}
	privileged := map[string]any{"name": "app", "image": "registry.k8s.io/pause", "securityContext": map[string]any{"privileged": true}}
	hardened := map[string]any{
		"name": "app", "image": "registry.k8s.io/pause",
		"securityContext": map[string]any{
			"runAsNonRoot": true, "allowPrivilegeEscalation": false,
			"capabilities":   map[string]any{"drop": []any{"ALL"}},
			"seccompProfile": map[string]any{"type": "RuntimeDefault"},
		},
	}
	tests := []struct {
		name     string
		level    string
		template map[string]any
		want     []violation
	}{
		{name: "benign at baseline", level: "baseline", template: spec(map[string]any{}, app), want: []violation{}},
		{
			name: "privileged at baseline", level: "baseline", template: spec(map[string]any{}, privileged),
			want: []violation{{Check: "privileged", Reason: "privileged", Detail: `container "app" must not set securityContext.privileged=true`}},
		},
		{name: "privileged at privileged", level: "privileged", template: spec(map[string]any{}, privileged), want: []violation{}},
		{
			name: "results in the library's order", level: "baseline", template: spec(map[string]any{"hostPID": true}, privileged),
			want: []violation{
				{Check: "hostNamespaces", Reason: "host namespaces", Detail: "hostPID=true"},
				{Check: "privileged", Reason: "privileged", Detail: `container "app" must not set securityContext.privileged=true`},
			},
		},
		{
			name: "ephemeral containers are judged", level: "baseline",
			template: spec(map[string]any{"ephemeralContainers": []any{map[string]any{"name": "debug", "image": "busybox", "securityContext": map[string]any{"privileged": true}}}}, app),
			want:     []violation{{Check: "privileged", Reason: "privileged", Detail: `container "debug" must not set securityContext.privileged=true`}},
		},
		{
			name: "metadata is read", level: "baseline",
			template: map[string]any{
				"metadata": map[string]any{"annotations": map[string]any{"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}},
				"spec":     spec(map[string]any{}, app)["spec"],
			},
			want: []violation{{Check: "appArmorProfile", Reason: "forbidden AppArmor profile", Detail: `annotation must not set AppArmor profile type to "container.apparmor.security.beta.kubernetes.io/app="unconfined""`}},
		},
		{
			name: "field names are case sensitive, as in the apiserver", level: "baseline",
			template: spec(map[string]any{}, map[string]any{"name": "app", "image": "x", "securityContext": map[string]any{"Privileged": true}}),
			want:     []violation{},
		},
		{
			name: "unhardened at restricted", level: "restricted", template: spec(map[string]any{}, app),
			want: []violation{
				{Check: "allowPrivilegeEscalation", Reason: "allowPrivilegeEscalation != false", Detail: `container "app" must set securityContext.allowPrivilegeEscalation=false`},
				{Check: "capabilities_restricted", Reason: "unrestricted capabilities", Detail: `container "app" must set securityContext.capabilities.drop=["ALL"]`},
				{Check: "runAsNonRoot", Reason: "runAsNonRoot != true", Detail: `pod or container "app" must set securityContext.runAsNonRoot=true`},
				{Check: "seccompProfile_restricted", Reason: "seccompProfile", Detail: `pod or container "app" must set securityContext.seccompProfile.type to "RuntimeDefault" or "Localhost"`},
			},
		},
		{name: "hardened at restricted", level: "restricted", template: spec(map[string]any{}, hardened), want: []violation{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(t, tt.level, tt.template)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("jitproxy.pod_security(%q, ...) (-want +got):\n%s", tt.level, diff)
			}
		})
	}
}

// TestErrorsHalt checks that what the builtin cannot judge fails the
// evaluation, even without strict built-in errors: a policy cannot mistake
// it for a pod without violations.
func TestErrorsHalt(t *testing.T) {
	call := podSecurity(t)
	pod := map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app"}}}}
	tests := []struct {
		name     string
		level    any
		template any
		wantErr  string
	}{
		{name: "unknown level", level: "Baseline", template: pod, wantErr: `level "Baseline": must be one of privileged, baseline, restricted`},
		{name: "version in the level", level: "baseline:latest", template: pod, wantErr: `level "baseline:latest"`},
		{name: "level not a string", level: 1, template: pod, wantErr: "level: got number, want a string"},
		{name: "template not an object", level: "baseline", template: []any{pod}, wantErr: "pod_template: got array, want an object"},
		{name: "no spec", level: "baseline", template: map[string]any{"metadata": map[string]any{}}, wantErr: "pod_template: no spec"},
		{name: "null spec", level: "baseline", template: map[string]any{"spec": nil}, wantErr: "pod_template: spec is null"},
		{name: "spec not an object", level: "baseline", template: map[string]any{"spec": "privileged"}, wantErr: "pod_template: decode"},
		{
			name: "field of the wrong type", level: "baseline",
			template: map[string]any{"spec": map[string]any{"containers": []any{map[string]any{"name": "app", "securityContext": map[string]any{"privileged": "yes"}}}}},
			wantErr:  "pod_template: decode",
		},
		{name: "metadata not an object", level: "baseline", template: map[string]any{"metadata": "x", "spec": pod["spec"]}, wantErr: "pod_template: decode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := call(t, tt.level, tt.template)
			if err == nil || !strings.Contains(err.Error(), "jitproxy.pod_security: "+tt.wantErr) {
				t.Errorf("jitproxy.pod_security() = %+v, %v; want an error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func BenchmarkPodSecurity(b *testing.B) {
	ps, err := podsecurity.New()
	if err != nil {
		b.Fatal(err)
	}
	pq, err := rego.New(rego.Query(`jitproxy.pod_security("restricted", input)`), ps.Builtin().Rego()).PrepareForEval(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	template := map[string]any{"metadata": map[string]any{"name": "web"}, "spec": map[string]any{"containers": []any{
		map[string]any{"name": "app", "image": "registry.k8s.io/pause", "securityContext": map[string]any{"privileged": true}},
	}}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := pq.Eval(ctx, rego.EvalInput(template)); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzPodSecurity feeds the builtin arbitrary JSON as a pod template: it
// either fails or returns violations that each name a check and a reason,
// and it never panics.
func FuzzPodSecurity(f *testing.F) {
	ps, err := podsecurity.New()
	if err != nil {
		f.Fatal(err)
	}
	pq, err := rego.New(rego.Query(`violations := jitproxy.pod_security(input.level, input.template)`), ps.Builtin().Rego()).
		PrepareForEval(context.Background())
	if err != nil {
		f.Fatal(err)
	}
	f.Add("baseline", `{"spec": {"containers": [{"name": "app", "securityContext": {"privileged": true}}]}}`)
	f.Add("restricted", `{"metadata": {"annotations": {"a": "b"}}, "spec": {"hostPID": true, "volumes": [{"name": "v"}]}}`)
	f.Add("baseline", `{"spec": {"containers": [{"name": 1}]}}`)
	f.Add("privileged", `{"spec": null}`)
	f.Fuzz(func(t *testing.T, level, template string) {
		var v any
		if json.Unmarshal([]byte(template), &v) != nil {
			return
		}
		rs, err := pq.Eval(context.Background(), rego.EvalInput(map[string]any{"level": level, "template": v}))
		if err != nil {
			return
		}
		b, err := json.Marshal(rs[0].Bindings["violations"])
		if err != nil {
			t.Fatal(err)
		}
		var got []violation
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("violations %s: %v", b, err)
		}
		for _, v := range got {
			if v.Check == "" || v.Reason == "" {
				t.Errorf("violation %+v lacks a check or reason", v)
			}
		}
	})
}
