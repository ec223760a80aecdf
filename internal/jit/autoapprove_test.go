package jit

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// fakeApprover answers with rules or err, and keeps what it was asked.
type fakeApprover struct {
	rules []string
	err   error
	asked []AutoApprovalInput
}

func (f *fakeApprover) AutoApprove(_ context.Context, input any) ([]string, error) {
	f.asked = append(f.asked, input.(AutoApprovalInput))
	return f.rules, f.err
}

// TestAutoApproval: a request an auto-approval rule approves is ACTIVE at
// once, the rule recorded on the grant and in the audit stream; a rule
// that fails or none that approves leaves it to people; a policy that
// needs no approval does not ask the rules.
func TestAutoApproval(t *testing.T) {
	tests := []struct {
		name      string
		policy    string
		approver  *fakeApprover
		wantState State
		wantAsked int
	}{
		{name: "a rule approves", policy: "editor", approver: &fakeApprover{rules: []string{"short-reads"}}, wantState: StateActive, wantAsked: 1},
		{name: "no rule approves", policy: "editor", approver: &fakeApprover{}, wantState: StatePending, wantAsked: 1},
		{name: "the rules fail", policy: "editor", approver: &fakeApprover{err: errors.New("boom")}, wantState: StatePending, wantAsked: 1},
		{name: "no approval needed", policy: "reader", approver: &fakeApprover{rules: []string{"x"}}, wantState: StateActive, wantAsked: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.svc.cfg.AutoApprover = tt.approver
			g, err := f.svc.RequestGrant(context.Background(), alice, GrantRequest{Policy: tt.policy, Namespace: "demo", Reason: "look"})
			if err != nil {
				t.Fatal(err)
			}
			if g.State != tt.wantState || len(tt.approver.asked) != tt.wantAsked {
				t.Fatalf("state %s, asked %d times", g.State, len(tt.approver.asked))
			}
			if tt.wantAsked == 1 {
				in := tt.approver.asked[0]
				if in.Policy != "editor" || in.Namespace != "demo" || in.Requester.Name != "alice" || in.RequiredApprovals != 2 || in.DurationSeconds != 1800 || len(in.Permissions) == 0 {
					t.Errorf("the rules saw %+v", in)
				}
			}
			if tt.name != "a rule approves" {
				return
			}
			if g.AutoApprovedBy != "short-reads" || len(g.Approvals) != 1 || g.Approvals[0].By != "rule:short-reads" {
				t.Errorf("the grant does not record the rule: %q %+v", g.AutoApprovedBy, g.Approvals)
			}
			if diff := cmp.Diff([]string{audit.TypeGrantRequested, audit.TypeGrantApproved, audit.TypeGrantActivated}, f.audit.Types()); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
			es := f.audit.Events()
			if approved := es[1]; approved.Actor.Name != "rule:short-reads" {
				t.Errorf("grant.approved by %+v, want the rule", approved.Actor)
			}
		})
	}
}
