// Package podsecurity gives policies the Kubernetes Pod Security Standards
// as the Rego builtin jitproxy.pod_security. The standards are evaluated by
// k8s.io/pod-security-admission, the library behind the cluster's own Pod
// Security Admission, so jitproxy and the cluster judge a pod alike by
// construction.
//
// In Rego:
//
//	violations := jitproxy.pod_security(level, pod_template)
//
// level is "privileged", "baseline" or "restricted", judged by the latest
// version of the standards the library knows. pod_template is an object
// {"metadata": {...}, "spec": {...}}: a pod's metadata (optional) and its
// PodSpec, as a Pod carries them or as a workload's pod template does. The
// result is an array of objects {"check": ID, "reason": ..., "detail": ...},
// one per failed check, in the library's order (baseline checks first, then
// restricted ones, each sorted by ID); it is empty when the template meets
// the level. ID is the library's check ID ("privileged", "hostNamespaces",
// "runAsNonRoot", ...), reason and detail are the words the cluster's
// admission uses ("privileged", `container "app" must not set
// securityContext.privileged=true`); detail may be empty.
//
// A level that is not one of the three, or a pod_template that does not
// decode into metadata and a PodSpec (no spec, or a field of the wrong
// type), is an error that halts the evaluation whatever the engine's
// built-in error setting: the decision fails and the request is refused
// (fail closed). Decoding follows the apiserver's: field names are case
// sensitive, and fields this version of k8s.io/api does not know are
// ignored, as the checks cannot judge them anyway.
package podsecurity

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	sigsjson "sigs.k8s.io/json"

	"github.com/jitproxy/jitproxy/internal/authz"
)

// Name is the name policies call the builtin by.
const Name = "jitproxy.pod_security"

// Checker evaluates pod templates against the Pod Security Standards. It
// is safe for concurrent use.
type Checker struct {
	eval policy.Evaluator
	// ids holds, for each level, the check ID of each result eval returns
	// at that level, in the same order: the library's results carry no ID.
	ids map[api.Level][]policy.CheckID
}

// New builds a Checker from the library's default checks. It returns an
// error only when the library rejects its own checks.
func New() (*Checker, error) {
	eval, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, fmt.Errorf("podsecurity: build evaluator: %w", err)
	}
	ids, err := checkIDs()
	if err != nil {
		return nil, fmt.Errorf("podsecurity: %w", err)
	}
	return &Checker{eval: eval, ids: ids}, nil
}

// checkIDs learns which check produces each result at each level, by
// asking an evaluator built from the same checks, each of which fails with
// its own ID as the reason. The library orders results the same way for
// both evaluators, so no ordering or override rule is repeated here.
func checkIDs() (map[api.Level][]policy.CheckID, error) {
	checks := policy.DefaultChecks()
	for i := range checks {
		id := checks[i].ID
		checks[i].Versions = slices.Clone(checks[i].Versions)
		for j := range checks[i].Versions {
			checks[i].Versions[j].CheckPod = func(*metav1.ObjectMeta, *corev1.PodSpec) policy.CheckResult {
				return policy.CheckResult{ForbiddenReason: string(id)}
			}
		}
	}
	probe, err := policy.NewEvaluator(checks, nil)
	if err != nil {
		return nil, fmt.Errorf("build probe evaluator: %w", err)
	}
	ids := map[api.Level][]policy.CheckID{}
	for _, level := range []api.Level{api.LevelPrivileged, api.LevelBaseline, api.LevelRestricted} {
		results := probe.EvaluatePod(api.LevelVersion{Level: level, Version: api.LatestVersion()}, &metav1.ObjectMeta{}, &corev1.PodSpec{})
		ids[level] = []policy.CheckID{}
		for _, r := range results {
			ids[level] = append(ids[level], policy.CheckID(r.ForbiddenReason))
		}
	}
	if len(ids[api.LevelBaseline]) == 0 || len(ids[api.LevelRestricted]) <= len(ids[api.LevelBaseline]) {
		return nil, fmt.Errorf("the library has %d baseline and %d restricted checks, want some and more restricted ones",
			len(ids[api.LevelBaseline]), len(ids[api.LevelRestricted]))
	}
	return ids, nil
}

// Builtin returns jitproxy.pod_security, for authz.Config.Builtins.
func (c *Checker) Builtin() authz.Builtin {
	violation := types.NewObject([]*types.StaticProperty{
		types.NewStaticProperty("check", types.S),
		types.NewStaticProperty("reason", types.S),
		types.NewStaticProperty("detail", types.S),
	}, nil)
	return authz.Builtin{
		Name: Name,
		Decl: types.NewFunction(
			types.Args(
				types.Named("level", types.S).Description(`"privileged", "baseline" or "restricted"`),
				types.Named("pod_template", types.NewObject(nil, types.NewDynamicProperty(types.S, types.A))).
					Description(`{"metadata": {...}, "spec": {...}}: a pod's metadata (optional) and PodSpec`),
			),
			types.Named("violations", types.NewArray(nil, violation)).
				Description(`{"check", "reason", "detail"} for each failed check; empty when the template meets the level`),
		),
		Func: func(_ rego.BuiltinContext, args []*ast.Term) (*ast.Term, error) {
			v, err := c.check(args[0].Value, args[1].Value)
			if err != nil {
				return nil, rego.NewHaltError(err)
			}
			return v, nil
		},
	}
}

// check evaluates the template at the level, both as Rego values.
func (c *Checker) check(levelArg, templateArg ast.Value) (*ast.Term, error) {
	s, ok := levelArg.(ast.String)
	if !ok {
		return nil, fmt.Errorf("level: got %s, want a string", ast.ValueName(levelArg))
	}
	level, err := api.ParseLevel(string(s))
	if err != nil {
		return nil, fmt.Errorf("level %q: %w", string(s), err)
	}
	meta, spec, err := decodeTemplate(templateArg)
	if err != nil {
		return nil, err
	}
	results := c.eval.EvaluatePod(api.LevelVersion{Level: level, Version: api.LatestVersion()}, meta, spec)
	ids := c.ids[level]
	if len(results) != len(ids) {
		return nil, fmt.Errorf("level %s: the library gave %d results for %d checks", level, len(results), len(ids))
	}
	out := []*ast.Term{}
	for i, r := range results {
		if r.Allowed {
			continue
		}
		reason := r.ForbiddenReason
		if reason == "" {
			reason = policy.UnknownForbiddenReason
		}
		out = append(out, ast.ObjectTerm(
			ast.Item(ast.StringTerm("check"), ast.StringTerm(string(ids[i]))),
			ast.Item(ast.StringTerm("reason"), ast.StringTerm(reason)),
			ast.Item(ast.StringTerm("detail"), ast.StringTerm(r.ForbiddenDetail)),
		))
	}
	return ast.ArrayTerm(out...), nil
}

// decodeTemplate decodes a pod template's metadata and spec the way the
// apiserver decodes JSON.
func decodeTemplate(v ast.Value) (*metav1.ObjectMeta, *corev1.PodSpec, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return nil, nil, fmt.Errorf("pod_template: got %s, want an object", ast.ValueName(v))
	}
	if obj.Get(ast.StringTerm("spec")) == nil {
		return nil, nil, errors.New("pod_template: no spec")
	}
	raw, err := ast.JSON(obj)
	if err != nil {
		return nil, nil, fmt.Errorf("pod_template: %w", err)
	}
	b, err := json.Marshal(raw)
	if err != nil {
		return nil, nil, fmt.Errorf("pod_template: %w", err)
	}
	var t struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     *corev1.PodSpec   `json:"spec"`
	}
	if err := sigsjson.UnmarshalCaseSensitivePreserveInts(b, &t); err != nil {
		return nil, nil, fmt.Errorf("pod_template: decode: %w", err)
	}
	if t.Spec == nil {
		return nil, nil, errors.New("pod_template: spec is null")
	}
	return &t.Metadata, t.Spec, nil
}
