package policies_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
)

// TestShippedPolicyVersions pins the versions of the shipped access
// policies. A version is a hash of the parsed policy, so a change of what
// is hashed (a new field that is not left out when empty) changes every
// policy's version; jitproxy then judges every grant against the "changed"
// policies at its next start (policies.on_change), which would revoke
// grants whose policy did not change at all. Change these only with the
// policy files.
func TestShippedPolicyVersions(t *testing.T) {
	set, err := jit.LoadPolicies(policies.Access())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range set.All() {
		got[p.Name] = p.Version
	}
	want := map[string]string{
		"namespace-editor":    "98499c432ed6",
		"orders-table-writer": "c875aa2327f4",
		"pod-reader":          "df8e87cd11e0",
		"reports-reader":      "e07814497e97",
		"reports-writer":      "6df4edd5cbf1",
	}
	for name, v := range want {
		if diff := cmp.Diff(v, got[name]); diff != "" {
			t.Errorf("version of %s (-want +got):\n%s", name, diff)
		}
	}
}
