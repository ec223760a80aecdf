package jit

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const stepsPolicy = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: prod-editor}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions: [{verbs: ["*"], apiGroups: [""], resources: [pods]}]
  duration: {max: 1h}
  approval:
    steps:
      - {required: 1, approvers: {groups: [sre]}}
      - {required: 1, approvers: {groups: [security]}}
  credential: {provider: tokenrequest}
`

// TestApprovalSteps: a request that needs approvals from several groups
// is ACTIVE only once every step has its own; one person counts for one
// step only, and a step already complete takes no more.
func TestApprovalSteps(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	f.svc.cfg.Policies = mustPolicies(t, stepsPolicy)
	eve := Principal{Name: "eve", Groups: []string{"security"}}
	both := Principal{Name: "frank", Groups: []string{"sre", "security"}}

	g := f.request(t, alice, "prod-editor")
	if g.State != StatePending || g.RequiredApprovals != 2 || g.Waiting() != "1 approval from sre and 1 approval from security" {
		t.Fatalf("requested: %s, %d required, waiting for %q", g.State, g.RequiredApprovals, g.Waiting())
	}
	g, err := f.svc.Approve(ctx, bob, g.ID, "sre ok")
	if err != nil || g.State != StatePending || g.Waiting() != "1 approval from security" {
		t.Fatalf("after sre: %v %s, waiting for %q", err, g.State, g.Waiting())
	}
	// The sre step is complete: another sre approval is not needed.
	if _, err := f.svc.Approve(ctx, dave, g.ID, ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "waiting for 1 approval from security") {
		t.Errorf("a second sre approval: %v", err)
	}
	if g, err = f.svc.Approve(ctx, eve, g.ID, "security ok"); err != nil || g.State != StateActive {
		t.Fatalf("after security: %v %s", err, g.State)
	}
	if g.Approvals[0].Step != 1 || g.Approvals[1].Step != 2 {
		t.Errorf("steps recorded: %+v", g.Approvals)
	}

	// One person in both groups approves one step, and then is done.
	h := f.request(t, alice, "prod-editor")
	if h, err = f.svc.Approve(ctx, both, h.ID, ""); err != nil || h.State != StatePending {
		t.Fatalf("frank's approval: %v %s", err, h.State)
	}
	if _, err := f.svc.Approve(ctx, both, h.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("frank twice: %v", err)
	}
	if h.Waiting() != "1 approval from security" {
		t.Errorf("after frank: waiting for %q", h.Waiting())
	}
}

func TestApprovalStepsValidation(t *testing.T) {
	bad := strings.Replace(stepsPolicy, "      - {required: 1, approvers: {groups: [security]}}\n", "      - {required: 0, approvers: {groups: [security]}}\n    required: 2\n", 1)
	_, err := ParsePolicies("steps.yaml", []byte(bad))
	for _, want := range []string{"give either required and approvers, or steps", "steps[1] needs required of at least 1 and approvers"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
}
