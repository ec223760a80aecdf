package jit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
)

func TestCreateLockRefuses(t *testing.T) {
	agent := Principal{Name: "root", Groups: admin.Groups, Session: "s-1", Agent: "claude"}
	tests := []struct {
		name string
		by   Principal
		req  LockRequest
		want error
	}{
		{name: "not an admin", by: alice, req: LockRequest{User: "bob", Reason: "r"}, want: ErrForbidden},
		{name: "an agent acting for an admin", by: agent, req: LockRequest{User: "bob", Reason: "r"}, want: ErrForbidden},
		{name: "nothing to lock", by: admin, req: LockRequest{Reason: "r"}, want: ErrInvalid},
		{name: "two things to lock", by: admin, req: LockRequest{User: "bob", Policy: "reader", Reason: "r"}, want: ErrInvalid},
		{name: "no reason", by: admin, req: LockRequest{User: "bob"}, want: ErrInvalid},
		{name: "a negative TTL", by: admin, req: LockRequest{User: "bob", TTL: -time.Second, Reason: "r"}, want: ErrInvalid},
		{name: "a control character", by: admin, req: LockRequest{User: "bob\n", Reason: "r"}, want: ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			if _, err := f.svc.CreateLock(context.Background(), tt.by, tt.req); !errors.Is(err, tt.want) {
				t.Errorf("CreateLock() = %v, want %v", err, tt.want)
			}
			if locks, _ := f.svc.store.getLocks(context.Background()); len(locks) != 0 {
				t.Errorf("stored %v", locks)
			}
		})
	}
}

// TestLockHoldsOnAnotherReplica: a lock made on replica a denies on
// replica b at once (its view is read again on the announcement), only
// what it names, until it is removed.
func TestLockHoldsOnAnotherReplica(t *testing.T) {
	tests := []struct {
		name string
		req  func(s *Session) LockRequest
		// locked: alice's session is locked; without is the grant left in
		// force when only a grant is locked.
		locked  bool
		without string
	}{
		{name: "the user", locked: true, req: func(*Session) LockRequest { return LockRequest{User: "alice"} }},
		{name: "the agent", locked: true, req: func(*Session) LockRequest { return LockRequest{Agent: "claude"} }},
		{name: "the session", locked: true, req: func(s *Session) LockRequest { return LockRequest{Session: s.ID} }},
		{name: "an access policy", without: "reader", req: func(*Session) LockRequest { return LockRequest{Policy: "reader"} }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			a := newFixture(t)
			b := newFixtureOn(t, a.mr, a.clock)
			runReplica(t, a)
			runReplica(t, b)
			s, _ := a.session(t, "alice", "developers")
			other, _ := a.session(t, "carol", "developers")
			reader := a.request(t, alice, "reader")
			a.request(t, carol, "reader")
			if got := b.activeIDs(t, s.ID); len(got) != 1 {
				t.Fatalf("before the lock: %v", got)
			}
			req := tt.req(s)
			req.Reason = "incident 7: the agent deletes things"
			l, err := a.svc.CreateLock(ctx, admin, req)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the lock to reach replica b", func() bool {
				active, err := b.svc.ActiveGrants(ctx, s.ID)
				if tt.locked {
					return errors.Is(err, ErrLocked)
				}
				return err == nil && len(active.Grants) == 0
			})
			if tt.locked {
				_, err := b.svc.ActiveGrants(ctx, s.ID)
				var le *LockedError
				if !errors.As(err, &le) || le.Lock.ID != l.ID || !strings.Contains(err.Error(), "incident 7: the agent deletes things") {
					t.Errorf("ActiveGrants() = %v", err)
				}
			}
			if tt.without != "" && reader.Policy != tt.without {
				t.Fatalf("test setup: the grant is under %s", reader.Policy)
			}
			// carol's session: locked only with the agent, whose name both share.
			_, err = b.svc.ActiveGrants(ctx, other.ID)
			if wantLocked := req.Agent != ""; errors.Is(err, ErrLocked) != wantLocked {
				t.Errorf("another user's session: %v, locked %v", err, wantLocked)
			}

			if _, err := a.svc.RemoveLock(ctx, admin, l.ID, "contained"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the removal to reach replica b", func() bool {
				active, err := b.svc.ActiveGrants(ctx, s.ID)
				return err == nil && len(active.Grants) == 1
			})
			if diff := cmp.Diff([]string{audit.TypeLockCreated, audit.TypeLockRemoved}, lockEvents(a.audit.Events())); diff != "" {
				t.Errorf("audit (-want +got):\n%s", diff)
			}
		})
	}
}

func lockEvents(es []audit.Event) []string {
	var types []string
	for _, e := range es {
		if e.Lock != nil {
			types = append(types, e.Type)
		}
	}
	return types
}

// TestLockEndsWatches: a stream open under a session or grant a new lock
// holds ends on the other replica.
func TestLockEndsWatches(t *testing.T) {
	tests := []struct {
		name string
		req  LockRequest
	}{
		{name: "its user", req: LockRequest{User: "alice"}},
		{name: "its grant's policy", req: LockRequest{Policy: "reader"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newFixture(t)
			b := newFixtureOn(t, a.mr, a.clock)
			runReplica(t, a)
			runReplica(t, b)
			s, _ := a.session(t, "alice", "developers")
			g := a.request(t, alice, "reader")
			done, setGrant, stop := watchEnd(b.svc, s.ID)
			defer stop()
			setGrant(g.ID)
			tt.req.Reason = "stop"
			if _, err := a.svc.CreateLock(context.Background(), admin, tt.req); err != nil {
				t.Fatal(err)
			}
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("the watch did not end")
			}
		})
	}
}

// TestLockExpires: a lock with a TTL stops holding when it passes, and
// the reaper removes it, recorded as removed by jitproxy.
func TestLockExpires(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	runReplica(t, f)
	s, _ := f.session(t, "alice", "developers")
	f.request(t, alice, "reader")
	if _, err := f.svc.CreateLock(ctx, admin, LockRequest{User: "alice", TTL: time.Minute, Reason: "cool down"}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.ActiveGrants(ctx, s.ID); !errors.Is(err, ErrLocked) {
		t.Fatalf("under the lock: %v", err)
	}
	f.clock.Advance(time.Minute)
	if _, err := f.svc.ActiveGrants(ctx, s.ID); err != nil {
		t.Fatalf("after its TTL: %v", err)
	}
	f.svc.Reap(ctx)
	if locks, err := f.svc.ListLocks(ctx, admin); err != nil || len(locks) != 0 {
		t.Errorf("ListLocks() = %v, %v", locks, err)
	}
	es := f.audit.Events()
	last := es[len(es)-1]
	if last.Type != audit.TypeLockRemoved || last.Actor.Name != "jitproxy" || last.Lock.Reason != "expired" {
		t.Errorf("last event %s by %+v: %+v", last.Type, last.Actor, last.Lock)
	}
}

// TestLocksWithoutSubscription: a replica whose view of the locks cannot be
// known fresh (not subscribed) reads them on every request, and refuses
// the request when it cannot.
func TestLocksWithoutSubscription(t *testing.T) {
	ctx := context.Background()
	a := newFixture(t)
	b := newFixtureOn(t, a.mr, a.clock) // never runs: never subscribed
	s, _ := a.session(t, "alice", "developers")
	a.request(t, alice, "reader")
	if _, err := a.svc.CreateLock(ctx, admin, LockRequest{Agent: "claude", Reason: "r"}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.svc.ActiveGrants(ctx, s.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("ActiveGrants() = %v, want ErrLocked", err)
	}
	a.mr.SetError("LOADING")
	defer a.mr.SetError("")
	if _, err := b.svc.ActiveGrants(ctx, s.ID); err == nil || errors.Is(err, ErrLocked) {
		t.Errorf("with the store failing: %v, want an error", err)
	}
}

func TestListLocks(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	first, _ := f.svc.CreateLock(ctx, admin, LockRequest{User: "alice", Reason: "one"})
	f.clock.Advance(time.Second)
	second, _ := f.svc.CreateLock(ctx, admin, LockRequest{Policy: "editor", TTL: time.Hour, Reason: "two"})
	locks, err := f.svc.ListLocks(ctx, admin)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*Lock{first, second}, locks); diff != "" {
		t.Errorf("ListLocks (-want +got):\n%s", diff)
	}
	if _, err := f.svc.ListLocks(ctx, alice); !errors.Is(err, ErrForbidden) {
		t.Errorf("ListLocks(alice) = %v", err)
	}
	if _, err := f.svc.RemoveLock(ctx, alice, first.ID, ""); !errors.Is(err, ErrForbidden) {
		t.Errorf("RemoveLock(alice) = %v", err)
	}
	if _, err := f.svc.RemoveLock(ctx, admin, "l-nope", ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("RemoveLock(unknown) = %v", err)
	}
	if !slices.ContainsFunc(locks, func(l *Lock) bool { return l.CreatedBy == "root" }) {
		t.Errorf("CreatedBy not set: %+v", locks[0])
	}
}

// TestLockRefusesGrantRequests: a grant a lock would hold back is not
// created: not for a locked user or agent, not under a locked policy.
func TestLockRefusesGrantRequests(t *testing.T) {
	agent := Principal{Name: "alice", Groups: alice.Groups, Session: "s-1", Agent: "claude"}
	tests := []struct {
		name   string
		lock   LockRequest
		by     Principal
		policy string
		locked bool
	}{
		{name: "the user", lock: LockRequest{User: "alice"}, by: alice, policy: "reader", locked: true},
		{name: "the agent", lock: LockRequest{Agent: "claude"}, by: agent, policy: "reader", locked: true},
		{name: "the policy", lock: LockRequest{Policy: "reader"}, by: alice, policy: "reader", locked: true},
		{name: "another policy", lock: LockRequest{Policy: "editor"}, by: alice, policy: "reader"},
		{name: "another user", lock: LockRequest{User: "carol"}, by: alice, policy: "reader"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			runReplica(t, f)
			tt.lock.Reason = "stop"
			if _, err := f.svc.CreateLock(ctx, admin, tt.lock); err != nil {
				t.Fatal(err)
			}
			_, err := f.svc.RequestGrant(ctx, tt.by, GrantRequest{Policy: tt.policy, Namespace: "demo", Reason: "r", DryRun: true})
			if errors.Is(err, ErrLocked) != tt.locked {
				t.Errorf("RequestGrant() = %v, locked %v", err, tt.locked)
			}
		})
	}
}
