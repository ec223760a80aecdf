package policies

import (
	"context"
	"testing"

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
// would if it knew jitproxy's builtins, and as `jitproxy policy test`
// runs them. A builtin error fails the test.
func TestRego(t *testing.T) {
	rs, err := authz.RunTests(context.Background(), authz.TestConfig{Policies: Authz(), Builtins: builtins(t)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		switch {
		case r.Error != nil:
			t.Errorf("%s.%s: %v", r.Package, r.Name, r.Error)
		case r.Fail:
			t.Errorf("%s.%s: FAIL", r.Package, r.Name)
		}
	}
	if len(rs) == 0 {
		t.Fatal("no Rego tests ran")
	}
	t.Logf("%d Rego tests ran", len(rs))
}
