package policies

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// TestExamples: the examples the README points to load as they are, and
// the auto-approval rules pass their tests. They are not embedded: make
// run does not load them.
func TestExamples(t *testing.T) {
	set, err := jit.LoadPolicies(os.DirFS("examples/access"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range set.All() {
		names = append(names, p.Name)
	}
	if want := []string{"night-reader", "team-editor"}; !slices.Equal(names, want) {
		t.Errorf("example access policies %v, want %v", names, want)
	}
	if p := set.Get("team-editor"); p == nil || p.Conditions == nil || !p.Conditions.EndOutsideWindows || len(p.Duration.MaxFor) != 2 || len(p.Approval.Steps) != 2 {
		t.Errorf("team-editor does not show what the README says it shows: %+v", p)
	}

	modules := map[string]*ast.Module{}
	files, err := filepath.Glob("examples/approval/*.rego")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(f, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatal(err)
		}
		modules[f] = m
	}
	ch, err := tester.NewRunner().SetModules(modules).RaiseBuiltinErrors(true).RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range ch {
		n++
		if r.Error != nil || r.Fail {
			t.Errorf("%s.%s: failed (%v)", r.Package, r.Name, r.Error)
		}
	}
	if n < 6 {
		t.Errorf("%d Rego tests of the examples ran, want every one", n)
	}
}
