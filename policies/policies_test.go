package policies

import (
	"context"
	"io/fs"
	"path"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
)

// builtins are the Go functions the shipped policies call, as cmd/proxy
// gives them to the engine.
func builtins(t testing.TB) []authz.Builtin {
	t.Helper()
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	return []authz.Builtin{ps.Builtin()}
}

// TestRego runs the Rego tests beside the policies, as `opa test authz/`
// would if it knew jitproxy's builtins. A builtin error fails the test.
func TestRego(t *testing.T) {
	modules := map[string]*ast.Module{}
	err := fs.WalkDir(Authz(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" {
			return err
		}
		src, err := fs.ReadFile(Authz(), p)
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
		t.Fatal(err)
	}
	var custom []*tester.Builtin
	for _, b := range builtins(t) {
		custom = append(custom, &tester.Builtin{Decl: &ast.Builtin{Name: b.Name, Decl: b.Decl}, Func: b.Rego()})
	}
	runner := tester.NewRunner().SetModules(modules).AddCustomBuiltins(custom).RaiseBuiltinErrors(true)
	ch, err := runner.RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range ch {
		n++
		switch {
		case r.Error != nil:
			t.Errorf("%s.%s: %v", r.Package, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s.%s: FAIL", r.Package, r.Name)
		}
	}
	if n == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests ran", n)
}
