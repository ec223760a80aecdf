package jit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// TestReconcileGrants: when the access policies change, a grant its
// policy's new version would not give is revoked, with why; one it would
// still give is kept.
func TestReconcileGrants(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *Policy) *Policy // nil: the policy is removed
		mode   OnPolicyChange
		want   string // the revocation's reason; "" kept
	}{
		{name: "unchanged", change: func(p *Policy) *Policy { return p }},
		{name: "removed", want: `access policy "reader" was removed`},
		{name: "a permission narrowed", change: func(p *Policy) *Policy {
			p.Permissions = []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}}
			return p
		}, want: "it no longer gives every permission the grant has"},
		{name: "a permission added", change: func(p *Policy) *Policy {
			p.Permissions = append(p.Permissions, access.Permission{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"configmaps"}}})
			return p
		}},
		{name: "the namespace no longer allowed", change: func(p *Policy) *Policy { p.Namespaces = []string{"staging"}; return p },
			want: `it no longer allows namespace "demo"`},
		{name: "the user no longer a subject", change: func(p *Policy) *Policy { p.Subjects = Subjects{Groups: []string{"sre"}}; return p },
			want: "alice is no longer among its subjects"},
		{name: "a shorter maximum", change: func(p *Policy) *Policy { p.Duration.Max = p.Duration.Default / 3; return p },
			want: "exceeds its maximum"},
		{name: "a shorter maximum for the user's group", change: func(p *Policy) *Policy {
			p.Duration.MaxFor = []MaxDuration{{Subjects: Subjects{Groups: []string{"developers"}}, Max: 5 * time.Minute}}
			return p
		}, want: "the grant's duration 15m0s exceeds its maximum 5m0s for alice"},
		{name: "a shorter maximum for others", change: func(p *Policy) *Policy {
			p.Duration.MaxFor = []MaxDuration{{Subjects: Subjects{Groups: []string{"contractors"}}, Max: 5 * time.Minute}}
			return p
		}},
		{name: "a namespace pattern that still matches", change: func(p *Policy) *Policy { p.Namespaces = []string{"de*"}; return p }},
		{name: "removed, but kept by the setting", mode: KeepGrants},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			g := f.request(t, alice, "reader")
			var next []*Policy
			for _, p := range f.svc.policies().All() {
				if p.Name != "reader" {
					next = append(next, p)
					continue
				}
				if tt.change != nil {
					c := *p
					changed := tt.change(&c)
					if changed != p {
						changed.Version = policyVersion(changed)
					}
					next = append(next, changed)
				}
			}
			set, err := NewPolicies(next)
			if err != nil {
				t.Fatal(err)
			}
			f.svc.cfg.Policies = set
			mode := tt.mode
			if mode == "" {
				mode = RevokeGrants
			}
			stale, err := f.svc.ReconcileGrants(ctx, mode)
			if err != nil {
				t.Fatal(err)
			}
			after, err := f.svc.store.getGrant(ctx, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.mode == KeepGrants:
				if after.State != StateActive || !strings.Contains(stale[g.ID], "was removed") {
					t.Errorf("kept: state %s, judged %q", after.State, stale[g.ID])
				}
			case tt.want == "":
				if after.State != StateActive || stale[g.ID] != "" {
					t.Errorf("state %s, judged %q; want it kept", after.State, stale[g.ID])
				}
			default:
				if after.State != StateRevoked || after.EndedBy != "jitproxy" || !strings.Contains(after.EndReason, tt.want) {
					t.Errorf("state %s by %s: %q; want revoked with %q", after.State, after.EndedBy, after.EndReason, tt.want)
				}
				if e := <-f.ended; e.ID != g.ID {
					t.Errorf("OnGrantEnd for %s", e.ID)
				}
			}
		})
	}
}

// TestReconcileSuspends: with SuspendGrants, a grant its changed policy
// would not give is held back with the reason (not in force, named in
// Active.Held, its watches end, approvals refused), and resumes when a
// later set gives it again; each is an audit event.
func TestReconcileSuspends(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, _ := f.session(t, "alice", "developers")
	active := f.request(t, alice, "reader")
	pending := f.request(t, alice, "editor")
	original := f.svc.cfg.Policies
	ended := make(chan struct{})
	setGrant, stop := f.svc.Watch(s.ID, func() { close(ended) })
	defer stop()
	setGrant(active.ID)
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go f.svc.Run(runCtx)

	// Both policies now want group sre: alice is no longer a subject.
	var next []*Policy
	for _, p := range f.svc.policies().All() {
		c := *p
		c.Subjects = Subjects{Groups: []string{"sre"}}
		c.Version = policyVersion(&c)
		next = append(next, &c)
	}
	set, err := NewPolicies(next)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Policies = set
	stale, err := f.svc.ReconcileGrants(ctx, SuspendGrants)
	if err != nil {
		t.Fatal(err)
	}
	if len(stale) != 2 {
		t.Errorf("judged stale: %v", stale)
	}
	for _, id := range []string{active.ID, pending.ID} {
		g, err := f.svc.store.getGrant(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if g.State.Ended() || !strings.Contains(g.Suspended, "alice is no longer among its subjects") {
			t.Errorf("grant %s: %s, suspended %q", id, g.State, g.Suspended)
		}
	}
	a, err := f.svc.ActiveGrants(ctx, s.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Grants) != 0 || len(a.Held) != 1 || !strings.HasPrefix(a.Held[0], "grant "+active.ID+" (reader) is suspended: access policy \"reader\" changed") {
		t.Errorf("in force %v, held %q", a.Grants, a.Held)
	}
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("the watch on the suspended grant did not end")
	}
	if _, err := f.svc.Approve(ctx, bob, pending.ID, ""); !errors.Is(err, ErrConflict) || !strings.Contains(err.Error(), "is suspended") {
		t.Errorf("Approve(suspended) = %v, want ErrConflict", err)
	}
	// Judged again under the same set: nothing new happens.
	if _, err := f.svc.ReconcileGrants(ctx, SuspendGrants); err != nil {
		t.Fatal(err)
	}

	f.svc.cfg.Policies = original
	if _, err := f.svc.ReconcileGrants(ctx, SuspendGrants); err != nil {
		t.Fatal(err)
	}
	if got := f.activeIDs(t, s.ID); len(got) != 1 || got[0] != active.ID {
		t.Errorf("in force after the policy came back: %v", got)
	}
	if _, err := f.svc.Approve(ctx, bob, pending.ID, ""); err != nil {
		t.Errorf("Approve(resumed) = %v", err)
	}
	var types []string
	for _, e := range f.audit.Events() {
		if e.Type == audit.TypeGrantSuspended || e.Type == audit.TypeGrantResumed {
			types = append(types, e.Type)
			if e.Actor.Name != "jitproxy" || e.Type == audit.TypeGrantSuspended && e.Grant.Suspended == "" {
				t.Errorf("%s by %s, suspended %q", e.Type, e.Actor.Name, e.Grant.Suspended)
			}
		}
	}
	if want := []string{"grant.suspended", "grant.suspended", "grant.resumed", "grant.resumed"}; !slices.Equal(types, want) {
		t.Errorf("events %v, want %v", types, want)
	}
}
