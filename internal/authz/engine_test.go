package authz_test

import (
	"context"
	"fmt"
	"io/fs"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/policies"
)

// newEngine builds an Engine on the shipped policies, with the builtins
// they call.
func newEngine(t testing.TB) *authz.Engine {
	t.Helper()
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	e, err := authz.New(context.Background(), authz.Config{Policies: policies.Authz(), Builtins: []authz.Builtin{ps.Builtin()}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

var podReader = authz.Grant{
	ID: "g-1", Policy: "pod-reader", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "list", "watch"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
}

var podAdmin = authz.Grant{
	ID: "g-2", Policy: "pod-admin", Target: "demo", Namespace: "demo",
	Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{""}, Resources: []string{"pods"}}}},
}

func listPods(ns string) access.Action {
	return access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET", Path: "/api/v1/namespaces/" + ns + "/pods", Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: ns}}
}

func TestDecide(t *testing.T) {
	createPod := listPods("demo")
	createPod.Kubernetes.Verb, createPod.Method = "create", "POST"
	privileged := map[string]any{"apiVersion": "v1", "kind": "Pod", "metadata": map[string]any{"name": "web"}, "spec": map[string]any{"containers": []any{
		map[string]any{"name": "app", "image": "registry.k8s.io/pause", "securityContext": map[string]any{"privileged": true}},
	}}}
	tests := []struct {
		name string
		in   authz.Input
		want authz.Decision
	}{
		{
			name: "no grant denies by default",
			in:   authz.Input{Action: listPods("demo")},
			want: authz.Decision{GrantIDs: []string{}, Reasons: []string{authz.ReasonNoGrant}},
		},
		{
			name: "grant in scope allows",
			in:   authz.Input{Action: listPods("demo"), Grants: authz.NewGrantSet(podReader)},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-1"}, Reasons: []string{"permitted by grant g-1"}},
		},
		{
			name: "every permitting grant is listed",
			in:   authz.Input{Action: listPods("demo"), Grants: authz.NewGrantSet(podAdmin, podReader)},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-1", "g-2"}, Reasons: []string{"permitted by grant g-1", "permitted by grant g-2"}},
		},
		{
			name: "other namespace denies",
			in:   authz.Input{Action: listPods("prod"), Grants: authz.NewGrantSet(podReader)},
			want: authz.Decision{GrantIDs: []string{}, Reasons: []string{authz.ReasonNoGrant}},
		},
		{
			name: "discovery needs no grant",
			in:   authz.Input{Action: access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET", Path: "/api", Kubernetes: &access.KubernetesAction{Verb: "get"}}},
			want: authz.Decision{Allowed: true, Discovery: true, GrantIDs: []string{}, Reasons: []string{authz.ReasonDiscovery}},
		},
		{
			name: "forbid beats permit",
			in:   authz.Input{Action: createPod, Object: privileged, Grants: authz.NewGrantSet(podAdmin)},
			want: authz.Decision{GrantIDs: []string{"g-2"}, Reasons: []string{
				`pod violates PodSecurity "baseline:latest": privileged (container "app" must not set securityContext.privileged=true)`,
			}},
		},
		{
			name: "the body is not judged",
			in:   authz.Input{Action: createPod, Body: privileged, Grants: authz.NewGrantSet(podAdmin)},
			want: authz.Decision{Allowed: true, GrantIDs: []string{"g-2"}, Reasons: []string{"permitted by grant g-2"}},
		},
	}
	e := newEngine(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() (-want +got):\n%s", diff)
			}
		})
	}
}

func TestObjectsInInput(t *testing.T) {
	files := fstest.MapFS{"a.rego": {Data: []byte(`package jitproxy.authz
permit contains "g-1" if true
forbid contains sprintf("object=%v old_object=%v", [object.get(input, "object", "absent"), object.get(input, "old_object", "absent")])
`)}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   authz.Input
		want []string
	}{
		{name: "neither", in: authz.Input{}, want: []string{"object=absent old_object=absent"}},
		{name: "create", in: authz.Input{Object: map[string]any{"kind": "Pod"}}, want: []string{`object={"kind": "Pod"} old_object=absent`}},
		{
			name: "update",
			in:   authz.Input{Object: map[string]any{"v": 2.0}, OldObject: map[string]any{"v": 1.0}},
			want: []string{`object={"v": 2} old_object={"v": 1}`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got.Reasons); diff != "" {
				t.Errorf("Decide() reasons (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsBadPolicySets(t *testing.T) {
	tests := []struct {
		name    string
		files   fstest.MapFS
		wantErr string
	}{
		{name: "empty", files: fstest.MapFS{}, wantErr: "no .rego policy files"},
		{name: "only tests", files: fstest.MapFS{"a_test.rego": {Data: []byte("package x\ntest_a if true\n")}}, wantErr: "no .rego policy files"},
		{name: "syntax error", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains if {\n")}}, wantErr: "a.rego"},
		{name: "no permit rule", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\nforbid contains \"x\" if false\n")}}, wantErr: "no policy defines data.jitproxy.authz.permit"},
		{name: "wrong package", files: fstest.MapFS{"a.rego": {Data: []byte("package other\npermit contains \"x\" if true\n")}}, wantErr: "no policy defines"},
		{name: "compile error", files: fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains x if true\n")}}, wantErr: "compile policies"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.New(context.Background(), authz.Config{Policies: tt.files})
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("New() error = %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestPolicyWithoutForbidRule(t *testing.T) {
	files := fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\npermit contains g.id if some g in input.grants\n")}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), authz.Input{Grants: authz.NewGrantSet(authz.Grant{ID: "g-1"})})
	if err != nil {
		t.Fatal(err)
	}
	if !got.Allowed {
		t.Errorf("Decide() = %+v, want allowed", got)
	}
}

func TestEvaluationErrorFailsClosed(t *testing.T) {
	// Two different values for one complete rule is an evaluation error.
	files := fstest.MapFS{"a.rego": {Data: []byte(`package jitproxy.authz
permit contains "g-1" if true
forbid contains reason if reason := conflict
conflict := "a" if true
conflict := "b" if input.action.kubernetes.verb == "get"
`)}}
	e, err := authz.New(context.Background(), authz.Config{Policies: files})
	if err != nil {
		t.Fatal(err)
	}
	got, err := e.Decide(context.Background(), authz.Input{Action: access.Action{Kubernetes: &access.KubernetesAction{Verb: "get"}}})
	if err == nil {
		t.Fatalf("Decide() = %+v, nil; want an error", got)
	}
	if got.Allowed {
		t.Error("a failed evaluation returned Allowed")
	}
}

// grantsOf returns n grants of which only the last permits listing pods
// in demo: the others are for other namespaces.
func grantsOf(n int) *authz.GrantSet {
	gs := make([]authz.Grant, n)
	for i := range n - 1 {
		g := podAdmin
		g.ID, g.Namespace = fmt.Sprintf("g-%d", i+10), fmt.Sprintf("ns-%d", i)
		gs[i] = g
	}
	gs[n-1] = podReader
	return authz.NewGrantSet(gs...)
}

// readBy is a list of pods in demo by a caller with n grants (grantsOf).
func readBy(n int) authz.Input {
	return authz.Input{
		Caller: access.Caller{Session: "s-1", Agent: "agent", User: "alice", Groups: []string{"dev"}},
		Action: listPods("demo"),
		Grants: grantsOf(n),
	}
}

// BenchmarkDecide measures the decision for a read by a caller with 1, 100
// and 1,000 active grants, as the data plane makes it for every request
// after the first with the same caller, action and grants: from the cache.
func BenchmarkDecide(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			e, in := newEngine(b), readBy(n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d, err := e.Decide(ctx, in); err != nil || !d.Allowed {
					b.Fatalf("Decide() = %+v, %v; want allowed", d, err)
				}
			}
		})
	}
}

// BenchmarkDecideEvaluated measures what BenchmarkDecide measures when the
// decision is not cached: the first request of its kind, which OPA
// evaluates. Each iteration names another pod.
func BenchmarkDecideEvaluated(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("grants=%d", n), func(b *testing.B) {
			e, in := newEngine(b), readBy(n)
			in.Action.Kubernetes.Verb = "get"
			ctx := context.Background()
			names := make([]string, 1<<16)
			for i := range names {
				names[i] = fmt.Sprintf("pod-%d", i)
			}
			b.ReportAllocs()
			i := 0
			for b.Loop() {
				k := *in.Action.Kubernetes
				k.Name = names[i%len(names)]
				i++
				in.Action.Kubernetes = &k
				if d, err := e.Decide(ctx, in); err != nil || !d.Allowed {
					b.Fatalf("Decide() = %+v, %v; want allowed", d, err)
				}
			}
		})
	}
}

// BenchmarkDecideParallel is BenchmarkDecide's single grant from every
// processor at once.
func BenchmarkDecideParallel(b *testing.B) {
	e := newEngine(b)
	in := authz.Input{Caller: access.Caller{Session: "s-1", User: "alice"}, Action: listPods("demo"), Grants: grantsOf(1)}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if d, err := e.Decide(context.Background(), in); err != nil || !d.Allowed {
				b.Errorf("Decide() = %+v, %v; want allowed", d, err)
				return
			}
		}
	})
}

// BenchmarkDecideDeployment measures admission: the shipped policies judge
// a Deployment's pod template with jitproxy.pod_security.
func BenchmarkDecideDeployment(b *testing.B) {
	e := newEngine(b)
	action := listPods("demo")
	action.Kubernetes.Verb, action.Method, action.Kubernetes.APIGroup, action.Kubernetes.Resource = "create", "POST", "apps", "deployments"
	in := authz.Input{
		Caller: access.Caller{Session: "s-1", Agent: "agent", User: "alice", Groups: []string{"dev"}},
		Action: action,
		Object: map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment", "metadata": map[string]any{"name": "web", "namespace": "demo"},
			"spec": map[string]any{"replicas": 2.0, "template": map[string]any{
				"metadata": map[string]any{"labels": map[string]any{"app": "web"}},
				"spec": map[string]any{"containers": []any{
					map[string]any{"name": "app", "image": "registry.k8s.io/pause", "ports": []any{map[string]any{"containerPort": 8080.0}}},
				}},
			}},
		},
		Grants: authz.NewGrantSet(authz.Grant{ID: "g-3", Target: "demo", Namespace: "demo", Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"*"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}}}}}),
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		d, err := e.Decide(ctx, in)
		if err != nil || !d.Allowed {
			b.Fatalf("Decide() = %+v, %v; want allowed", d, err)
		}
	}
}

func TestUsesOldObject(t *testing.T) {
	tests := []struct {
		name string
		rule string
		want bool
	}{
		{name: "no reference", rule: `forbid contains "x" if input.object.spec.hostPID`, want: false},
		{name: "input.old_object", rule: `forbid contains "x" if input.old_object.spec.replicas > 5`, want: true},
		{name: "input[\"old_object\"]", rule: `forbid contains "x" if input["old_object"]`, want: true},
		{name: "input as a whole", rule: `forbid contains "x" if { x := input; x.old_object }`, want: true},
		{name: "a key chosen at evaluation", rule: `forbid contains k if { some k; input[k] == 1 }`, want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := fstest.MapFS{"p.rego": {Data: []byte("package jitproxy.authz\n\npermit contains \"g\" if false\n\n" + tt.rule + "\n")}}
			e, err := authz.New(context.Background(), authz.Config{Policies: files})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.UsesOldObject(); got != tt.want {
				t.Errorf("UsesOldObject() = %v, want %v", got, tt.want)
			}
		})
	}
	if newEngine(t).UsesOldObject() {
		t.Error("the shipped policies read input.old_object: every change would cost a read of the stored object")
	}
}

// counter is a builtin that returns how often it was called, to tell an
// evaluation from a cached decision.
type counter struct {
	mu sync.Mutex
	n  int
}

func (c *counter) builtin(nondeterministic bool) authz.Builtin {
	return authz.Builtin{
		Name: "test.count", Decl: types.NewFunction(nil, types.N), Nondeterministic: nondeterministic,
		Func: func(rego.BuiltinContext, []*ast.Term) (*ast.Term, error) {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.n++
			return ast.IntNumberTerm(c.n), nil
		},
	}
}

func (c *counter) calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// TestDecisionCache: decisions are reused only for deterministic policies
// and inputs without a body or objects, and a reused decision is the one
// evaluation gives.
func TestDecisionCache(t *testing.T) {
	// Permits from the second evaluation on: a cached first decision stays
	// a deny.
	const countingPolicy = "package jitproxy.authz\npermit contains \"g\" if test.count() > 1\n"
	tests := []struct {
		name      string
		policy    string
		builtinND bool // the builtin declares itself nondeterministic
		in        authz.Input
		wantCache bool
		wantCalls int // of test.count after three Decides
	}{
		{name: "deterministic, no body", policy: countingPolicy, in: authz.Input{Action: listPods("demo")}, wantCache: true, wantCalls: 1},
		{name: "deterministic, with a body", policy: countingPolicy, in: authz.Input{Action: listPods("demo"), Body: map[string]any{}}, wantCache: true, wantCalls: 3},
		{name: "deterministic, with an object", policy: countingPolicy, in: authz.Input{Action: listPods("demo"), Object: map[string]any{}}, wantCache: true, wantCalls: 3},
		{name: "nondeterministic builtin", policy: countingPolicy, builtinND: true, in: authz.Input{Action: listPods("demo")}, wantCache: false, wantCalls: 3},
		{name: "time.now_ns", policy: countingPolicy + "late if time.now_ns() > 0\n", in: authz.Input{Action: listPods("demo")}, wantCache: false, wantCalls: 3},
		{name: "rand.intn in another package", policy: countingPolicy, in: authz.Input{Action: listPods("demo")}, wantCache: false, wantCalls: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := fstest.MapFS{"a.rego": {Data: []byte(tt.policy)}}
			if strings.HasPrefix(tt.name, "rand.intn") {
				files["b.rego"] = &fstest.MapFile{Data: []byte("package other\nx := rand.intn(\"k\", 10)\n")}
			}
			c := &counter{}
			e, err := authz.New(context.Background(), authz.Config{Policies: files, Builtins: []authz.Builtin{c.builtin(tt.builtinND)}})
			if err != nil {
				t.Fatal(err)
			}
			if got := e.CachesDecisions(); got != tt.wantCache {
				t.Errorf("CachesDecisions() = %v, want %v", got, tt.wantCache)
			}
			var ds []authz.Decision
			for range 3 {
				d, err := e.Decide(context.Background(), tt.in)
				if err != nil {
					t.Fatal(err)
				}
				ds = append(ds, d)
			}
			if got := c.calls(); got != tt.wantCalls {
				t.Errorf("test.count called %d times, want %d", got, tt.wantCalls)
			}
			if tt.wantCalls == 1 && (ds[1].Allowed || ds[2].Allowed) {
				t.Errorf("a cached decision differs from the first: %+v", ds)
			}
		})
	}
	if !newEngine(t).CachesDecisions() {
		t.Error("the shipped policies are not cached")
	}
}

// TestCachedDecisionsAreEvaluatedOnes: over many inputs, the shipped
// policies with the cache give, first and from the cache, the decisions
// they give without it.
func TestCachedDecisionsAreEvaluatedOnes(t *testing.T) {
	cached := newEngine(t)
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	// The same policies, plus a rule that reads the clock: not cached.
	files := fstest.MapFS{"clock.rego": {Data: []byte("package jitproxy.clock\nnow := time.now_ns()\n")}}
	if err := fs.WalkDir(policies.Authz(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(policies.Authz(), p)
		files[p] = &fstest.MapFile{Data: b}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	uncached, err := authz.New(context.Background(), authz.Config{Policies: files, Builtins: []authz.Builtin{ps.Builtin()}})
	if err != nil {
		t.Fatal(err)
	}
	if uncached.CachesDecisions() {
		t.Fatal("policies that read the clock are cached")
	}
	grantSets := []*authz.GrantSet{nil, authz.NewGrantSet(podReader), authz.NewGrantSet(podAdmin, podReader), authz.NewGrantSet(authz.Grant{ID: "g-9", Target: "other", Namespace: "demo", Permissions: podAdmin.Permissions})}
	var inputs []authz.Input
	for _, ns := range []string{"demo", "prod", "kube-system"} {
		for _, verb := range []string{"get", "list", "create"} {
			for _, sub := range []string{"", "exec", "log"} {
				for _, gs := range grantSets {
					a := listPods(ns)
					a.Kubernetes.Verb, a.Kubernetes.Subresource = verb, sub
					// Another client port each time: the shipped policies do not
					// read it, so the cached engine shares decisions across them.
					addr := fmt.Sprintf("127.0.0.1:%d", 40000+len(inputs)%3)
					inputs = append(inputs, authz.Input{Caller: access.Caller{Session: "s", User: "u", SourceAddr: addr}, Action: a, Grants: gs})
				}
			}
		}
	}
	ctx := context.Background()
	for round := range 2 {
		for _, in := range inputs {
			want, err := uncached.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			got, err := cached.Decide(ctx, in)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("round %d, %s %+v with %d grants (-uncached +cached):\n%s", round, in.Action.Path, *in.Action.Kubernetes, in.Grants.Len(), diff)
			}
		}
	}
}

// TestDecideConcurrently: one GrantSet, converted once, is evaluated by
// many requests at once (run with -race).
func TestDecideConcurrently(t *testing.T) {
	e := newEngine(t)
	gs := grantsOf(20)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 50 {
				a := listPods("demo")
				a.Kubernetes.Verb, a.Kubernetes.Name = "get", fmt.Sprintf("pod-%d-%d", w, i%10)
				d, err := e.Decide(context.Background(), authz.Input{Action: a, Grants: gs})
				if err != nil || !d.Allowed {
					t.Errorf("Decide() = %+v, %v; want allowed", d, err)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestDecisionCacheKeyLeavesOutTheUnreadSourceAddress: the client's
// address and port differ for every connection; when no policy can read
// input.caller.source_address, two requests that differ only there share
// a decision, and when one can, they do not.
func TestDecisionCacheKeyLeavesOutTheUnreadSourceAddress(t *testing.T) {
	const counting = "package jitproxy.authz\npermit contains \"g\" if test.count() > 0\n"
	tests := []struct {
		name      string
		policy    string
		wantCalls int
	}{
		{name: "not read", policy: counting, wantCalls: 1},
		{name: "read", policy: counting + "forbid contains \"from 10/8\" if startswith(input.caller.source_address, \"10.\")\n", wantCalls: 2},
		{name: "caller read whole", policy: counting + "forbid contains \"x\" if count(input.caller) > 99\n", wantCalls: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &counter{}
			e, err := authz.New(context.Background(), authz.Config{Policies: fstest.MapFS{"a.rego": {Data: []byte(tt.policy)}}, Builtins: []authz.Builtin{c.builtin(false)}})
			if err != nil {
				t.Fatal(err)
			}
			for _, addr := range []string{"127.0.0.1:40001", "127.0.0.1:40002"} {
				in := authz.Input{Caller: access.Caller{Session: "s", User: "u", SourceAddr: addr}, Action: listPods("demo")}
				if _, err := e.Decide(context.Background(), in); err != nil {
					t.Fatal(err)
				}
			}
			if got := c.calls(); got != tt.wantCalls {
				t.Errorf("evaluated %d times, want %d", got, tt.wantCalls)
			}
		})
	}
}
