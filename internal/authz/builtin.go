package authz

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

// Builtin is a function written in Go that policies can call like one of
// Rego's own built-in functions. Child packages provide them (for example
// podsecurity, whose jitproxy.pod_security judges pod templates) and
// cmd/proxy passes them in Config.Builtins.
type Builtin struct {
	// Name is what policies call the function, usually dotted to keep it
	// apart from OPA's built-ins: "jitproxy.pod_security". Required.
	Name string
	// Decl declares the arguments and the result, for the type checker
	// that runs when the policies are compiled. Required.
	Decl *types.Function
	// Func computes the result from the arguments, one term per argument
	// of Decl. It must be safe for concurrent use: requests are decided
	// in parallel. An error fails the evaluation (the Engine runs with
	// strict built-in errors), so the request is refused. Required.
	Func rego.BuiltinDyn
	// Nondeterministic is true when the result may differ for the same
	// arguments: it reads the clock, random numbers, the network or
	// anything else that changes. The Engine reuses decisions only when
	// every function the policies call is deterministic, so a function
	// that is not must say so.
	Nondeterministic bool
}

// Rego returns the option that adds b to a rego.Rego. The Engine uses it;
// so can anything else that evaluates the same policies, such as OPA's
// tester running the policies' Rego tests.
func (b Builtin) Rego() func(*rego.Rego) {
	return rego.FunctionDyn(&rego.Function{Name: b.Name, Decl: b.Decl, Nondeterministic: b.Nondeterministic}, b.Func)
}

// validateBuiltins reports every builtin that lacks a field or reuses a
// name, all at once.
func validateBuiltins(bs []Builtin) error {
	var errs []error
	seen := map[string]bool{}
	for i, b := range bs {
		switch {
		case b.Name == "":
			errs = append(errs, fmt.Errorf("authz: Config.Builtins[%d]: Name is required", i))
		case seen[b.Name]:
			errs = append(errs, fmt.Errorf("authz: Config.Builtins[%d]: %s is given twice", i, b.Name))
		}
		seen[b.Name] = true
		if b.Decl == nil {
			errs = append(errs, fmt.Errorf("authz: Config.Builtins[%d] (%s): Decl is required", i, b.Name))
		}
		if b.Func == nil {
			errs = append(errs, fmt.Errorf("authz: Config.Builtins[%d] (%s): Func is required", i, b.Name))
		}
	}
	return errors.Join(errs...)
}
