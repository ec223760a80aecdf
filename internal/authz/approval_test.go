package authz

import (
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
)

const approvalRules = `package jitproxy.approval

# Short, read-only requests during office hours need no person.
auto_approve contains "short-reads" if {
	input.duration_seconds <= 900
	every p in input.permissions {
		every v in p.kubernetes.verbs { v in {"get", "list", "watch"} }
	}
}

auto_approve contains "on-call" if "oncall" in input.requester.groups
`

func TestAutoApprove(t *testing.T) {
	withRules := fstest.MapFS{
		"authz.rego":    {Data: []byte("package jitproxy.authz\npermit contains \"g\" if false\n")},
		"approval.rego": {Data: []byte(approvalRules)},
	}
	e, err := New(context.Background(), Config{Policies: withRules})
	if err != nil {
		t.Fatal(err)
	}
	read := []any{map[string]any{"kubernetes": map[string]any{"verbs": []any{"get", "list"}}}}
	write := []any{map[string]any{"kubernetes": map[string]any{"verbs": []any{"get", "delete"}}}}
	tests := []struct {
		name  string
		input map[string]any
		want  []string
	}{
		{name: "a short read", input: map[string]any{"duration_seconds": 900, "permissions": read, "requester": map[string]any{"groups": []any{"dev"}}}, want: []string{"short-reads"}},
		{name: "a long read", input: map[string]any{"duration_seconds": 3600, "permissions": read, "requester": map[string]any{"groups": []any{"dev"}}}, want: []string{}},
		{name: "a write", input: map[string]any{"duration_seconds": 60, "permissions": write, "requester": map[string]any{"groups": []any{"dev"}}}, want: []string{}},
		{name: "two rules, sorted", input: map[string]any{"duration_seconds": 60, "permissions": read, "requester": map[string]any{"groups": []any{"oncall"}}}, want: []string{"on-call", "short-reads"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.AutoApprove(context.Background(), tt.input)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("AutoApprove (-want +got):\n%s", diff)
			}
		})
	}

	// Without rules: nothing approves.
	plain, err := New(context.Background(), Config{Policies: fstest.MapFS{"authz.rego": withRules["authz.rego"]}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := plain.AutoApprove(context.Background(), tests[0].input); err != nil || len(got) != 0 {
		t.Errorf("without rules: %v %v", got, err)
	}

	// A rule that fails to evaluate is an error, not an approval.
	failing, err := New(context.Background(), Config{Policies: fstest.MapFS{
		"authz.rego":    withRules["authz.rego"],
		"approval.rego": {Data: []byte("package jitproxy.approval\nauto_approve contains \"x\" if to_number(input.reason) > 0\n")},
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got, err := failing.AutoApprove(context.Background(), map[string]any{"reason": "not a number"}); err == nil || !strings.Contains(err.Error(), "auto-approval") {
		t.Errorf("a failing rule: %v %v", got, err)
	}
}
