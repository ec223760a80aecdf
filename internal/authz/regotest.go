package authz

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"
)

// TestConfig configures RunTests.
type TestConfig struct {
	// Policies holds the .rego files, tests (the rules named test_* of any
	// module, usually in files ending in _test.rego) and the policies they
	// test alike, at any depth; directories whose names begin with a dot
	// are skipped, as the policy loader skips them. Required.
	Policies fs.FS
	// Builtins are the Go functions the policies may call, as the Engine
	// is given them. Nil means none.
	Builtins []Builtin
	// Run, if set, is a regular expression: only the tests whose
	// package-qualified names (data.jitproxy.authz.test_x) match it run.
	Run string
}

// RunTests runs the Rego tests of cfg.Policies with OPA's tester, as `opa
// test` would if it knew cfg.Builtins: a builtin's error fails the test
// that called it, as it fails the Engine's evaluation. It returns one
// result per test, sorted by file and line. An error means
// the tests could not be run (a missing Policies, a builtin without its
// parts, a file that cannot be read or parsed, policies that do not
// compile), not that a test failed: a failed test is a result whose Fail
// or Error is set.
func RunTests(ctx context.Context, cfg TestConfig) ([]*tester.Result, error) {
	if cfg.Policies == nil {
		return nil, errors.New("authz: TestConfig.Policies is required")
	}
	if err := validateBuiltins(cfg.Builtins); err != nil {
		return nil, err
	}
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(cfg.Policies, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if d.IsDir() || path.Ext(p) != ".rego" {
			return nil
		}
		src, err := fs.ReadFile(cfg.Policies, p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			return err
		}
		modules[p] = m
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("authz: load policies and tests: %w", err)
	}
	var custom []*tester.Builtin
	for _, b := range cfg.Builtins {
		custom = append(custom, &tester.Builtin{Decl: &ast.Builtin{Name: b.Name, Decl: b.Decl}, Func: b.Rego()})
	}
	runner := tester.NewRunner().SetModules(modules).AddCustomBuiltins(custom).RaiseBuiltinErrors(true)
	if cfg.Run != "" {
		runner = runner.Filter(cfg.Run)
	}
	ch, err := runner.RunTests(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("authz: run the Rego tests: %w", err)
	}
	var out []*tester.Result
	for r := range ch {
		out = append(out, r)
	}
	// The tester runs tests in parallel: sorted, the report reads like the files.
	slices.SortStableFunc(out, func(a, b *tester.Result) int {
		if a.Location != nil && b.Location != nil {
			if c := cmp.Or(strings.Compare(a.Location.File, b.Location.File), cmp.Compare(a.Location.Row, b.Location.Row)); c != 0 {
				return c
			}
		}
		return cmp.Or(strings.Compare(a.Package, b.Package), strings.Compare(a.Name, b.Name))
	})
	return out, nil
}
