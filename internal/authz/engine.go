// Package authz decides whether a proxied request is allowed, by evaluating
// Rego policies with the embedded OPA engine.
//
// Policies are compiled once, when the Engine is built, and evaluated per
// request. A policy set is the package jitproxy.authz with two partial set
// rules: permit (IDs of grants that allow the request) and forbid (reasons the
// request must not happen), and optionally the boolean permit_discovery
// (the request may be made with the target's discovery identity, which can
// read the API's discovery documents and nothing else, without a grant). A
// request is allowed only when permit is not empty or permit_discovery holds,
// and forbid is empty: deny by default, and forbid beats permit. An
// evaluation error is returned as an error and the caller must deny.
//
// Decisions are cached when the policies are deterministic (they call no
// built-in function that reads the clock, random numbers or the network):
// a request with no body and no object, from the same caller, for the same
// action, with the same grants, gets the decision its first evaluation
// gave, since the policies would compute it again from the same input.
// The caller's source address counts only when a policy may read it.
//
// Policies may call functions written in Go, given as Config.Builtins; the
// child package podsecurity provides jitproxy.pod_security, the Kubernetes
// Pod Security Standards as the cluster's own admission applies them.
package authz

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// PolicyPackage is the Rego package jitproxy evaluates.
const PolicyPackage = "jitproxy.authz"

// engineModule reads the policy's rules so that a policy without a forbid
// or permit_discovery rule evaluates to an empty set or false rather than
// to undefined.
const engineModule = `package jitproxy.engine

permit := {id | some id in data.jitproxy.authz.permit}

forbid := {reason | some reason in data.jitproxy.authz.forbid}

default discovery := false

discovery if data.jitproxy.authz.permit_discovery == true
`

// ApprovalPackage is the Rego package of the auto-approval rules: its
// auto_approve is the set of the names of the rules that approve a grant
// request (see Engine.AutoApprove). It may be absent.
const ApprovalPackage = "jitproxy.approval"

// approvalModule reads the auto-approval rules so that their absence is an
// empty set rather than undefined.
const approvalModule = `package jitproxy.approvalengine

auto_approve := {name | some name in data.jitproxy.approval.auto_approve}
`

// Config configures an Engine.
type Config struct {
	// Policies holds the .rego files to load, at any depth. Files ending in
	// _test.rego are skipped. Required.
	Policies fs.FS
	// Builtins are the Go functions the policies may call, in addition to
	// OPA's built-ins. Nil means none: policies that call one then fail to
	// compile.
	Builtins []Builtin
}

// Engine evaluates the compiled policies. It is safe for concurrent use.
type Engine struct {
	query         rego.PreparedEvalQuery
	approval      rego.PreparedEvalQuery // data.jitproxy.approvalengine.auto_approve
	usesOldObject bool
	// readsSourceAddr is whether the policies may read
	// input.caller.source_address. When they cannot, it is left out of the
	// decision cache's key: it holds the client's port, which differs for
	// every connection, and would make every tunnel's first request an
	// evaluation.
	readsSourceAddr bool
	cache           *decisionCache // nil when the policies are not deterministic
}

// decisionCacheSize bounds the decision cache: up to twice this many
// decisions, a few hundred bytes each, are kept.
const decisionCacheSize = 8192

// New loads and compiles the policies in cfg.Policies with cfg.Builtins. It
// returns an error when a builtin lacks its name, declaration or function or
// two share a name, when a file cannot be read or parsed, when the policies
// do not compile (a call of a builtin not given is one way), or when no
// module defines data.jitproxy.authz.permit (every request would be denied,
// which is almost certainly a wrong policy directory).
func New(ctx context.Context, cfg Config) (*Engine, error) {
	var errs []error
	if cfg.Policies == nil {
		errs = append(errs, errors.New("authz: Config.Policies is required"))
	}
	errs = append(errs, validateBuiltins(cfg.Builtins))
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	modules, err := loadModules(cfg.Policies)
	if err != nil {
		return nil, err
	}
	if !definesPermit(modules) {
		return nil, fmt.Errorf("authz: no policy defines data.%s.permit", PolicyPackage)
	}
	// query prepares query over the policies, with its own engine module.
	query := func(query, module string) (rego.PreparedEvalQuery, error) {
		opts := []func(*rego.Rego){
			rego.Query(query),
			rego.ParsedModule(ast.MustParseModule(module)),
			rego.StrictBuiltinErrors(true),
		}
		for _, m := range modules {
			opts = append(opts, rego.ParsedModule(m))
		}
		for _, b := range cfg.Builtins {
			opts = append(opts, b.Rego())
		}
		return rego.New(opts...).PrepareForEval(ctx)
	}
	pq, err := query("data.jitproxy.engine", engineModule)
	if err != nil {
		return nil, fmt.Errorf("authz: compile policies: %w", err)
	}
	aq, err := query("data.jitproxy.approvalengine.auto_approve", approvalModule)
	if err != nil {
		return nil, fmt.Errorf("authz: compile the auto-approval rules: %w", err)
	}
	e := &Engine{
		query:           pq,
		approval:        aq,
		usesOldObject:   readsInput(modules, "old_object"),
		readsSourceAddr: readsInput(modules, "caller", "source_address"),
	}
	if deterministic(modules, cfg.Builtins) {
		e.cache = newDecisionCache(decisionCacheSize)
	}
	return e, nil
}

// AutoApprove evaluates the auto-approval rules (data.jitproxy.approval.
// auto_approve, a set of rule names) with input, a grant request as the
// rules see it, and returns the names of the rules that approve it,
// sorted; none when the policies have no such rules. An error means the
// rules could not be evaluated: the request is not auto-approved.
func (e *Engine) AutoApprove(ctx context.Context, input any) ([]string, error) {
	rs, err := e.approval.Eval(ctx, rego.EvalInput(input))
	if err != nil {
		return nil, fmt.Errorf("evaluate the auto-approval rules: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return nil, fmt.Errorf("evaluate the auto-approval rules: got %d results, want 1", len(rs))
	}
	names, err := stringSet(rs[0].Expressions[0].Value)
	if err != nil {
		return nil, fmt.Errorf("evaluate the auto-approval rules: %w", err)
	}
	slices.Sort(names)
	return names, nil
}

// CachesDecisions reports whether decisions are reused for equal inputs:
// whether the policies are deterministic.
func (e *Engine) CachesDecisions() bool { return e.cache != nil }

// UsesOldObject reports whether the policies read input.old_object, so
// that the stored object is fetched for changes only when a policy needs it.
func (e *Engine) UsesOldObject() bool { return e.usesOldObject }

// readsInput reports whether any module may read input at path (say
// "caller", "source_address"): a reference to it or into it, to one of
// its parents as a whole (input, input.caller), or through a key computed
// at evaluation time anywhere along the way (input[k], which could be
// it). Anything else is a reference to another part of the input, which
// cannot show it.
func readsInput(modules []*ast.Module, path ...string) bool {
	found := false
	for _, m := range modules {
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			if !found && ref.HasPrefix(ast.InputRootRef) && mayRead(ref[1:], path) {
				found = true
			}
			return found
		})
	}
	return found
}

// mayRead reports whether the reference terms ref, after input, may reach
// path.
func mayRead(ref ast.Ref, path []string) bool {
	for i, seg := range path {
		if i >= len(ref) {
			return true // a parent of path, as a whole
		}
		k, ok := ref[i].Value.(ast.String)
		if !ok {
			return true // a key computed at evaluation time
		}
		if string(k) != seg {
			return false // another part of the input
		}
	}
	return true // path, or inside it
}

func loadModules(fsys fs.FS) ([]*ast.Module, error) {
	var modules []*ast.Module
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || path.Ext(p) != ".rego" || strings.HasSuffix(p, "_test.rego") {
			return nil
		}
		src, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules = append(modules, m)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("authz: load policies: %w", err)
	}
	if len(modules) == 0 {
		return nil, errors.New("authz: no .rego policy files found")
	}
	return modules, nil
}

func definesPermit(modules []*ast.Module) bool {
	want := ast.MustParseRef("data." + PolicyPackage)
	for _, m := range modules {
		if !m.Package.Path.Equal(want) {
			continue
		}
		if slices.ContainsFunc(m.Rules, func(r *ast.Rule) bool {
			return r.Head.Name.Equal(ast.Var("permit")) || r.Head.Reference.String() == "permit"
		}) {
			return true
		}
	}
	return false
}
