package jit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/secret"
)

const testPolicies = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reader}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo, staging]
  permissions: [{verbs: [get, list], apiGroups: [""], resources: [pods]}]
  duration: {default: 15m, max: 1h}
  credential: {provider: tokenrequest}
---
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: editor}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: ["*"]
  permissions: [{verbs: ["*"], apiGroups: [""], resources: [pods]}]
  duration: {default: 30m, max: 4h}
  approval: {required: 2, approvers: {groups: [sre]}, timeout: 10m}
  credential: {provider: tokenrequest}
---
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: elsewhere}
spec:
  target: other-cluster
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions: [{verbs: [get], apiGroups: [""], resources: [pods]}]
  duration: {max: 1h}
  credential: {provider: tokenrequest}
`

var (
	alice  = Principal{Name: "alice", Groups: []string{"developers"}}
	bob    = Principal{Name: "bob", Groups: []string{"sre"}}
	carol  = Principal{Name: "carol", Groups: []string{"sre", "developers"}}
	dave   = Principal{Name: "dave", Groups: []string{"sre"}}
	runner = Principal{Name: "runner", Groups: []string{"jitproxy:runners"}}
	admin  = Principal{Name: "root", Groups: []string{"jitproxy:admins"}}
)

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	svc   *Service
	mr    *miniredis.Miniredis
	clock *clock
	audit *audittest.Log
	ended chan *Grant
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	mr := miniredis.RunT(t)
	return newFixtureOn(t, mr, &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)})
}

// newFixtureOn builds a Service on mr, as a second replica would be.
func newFixtureOn(t testing.TB, mr *miniredis.Miniredis, clk *clock) *fixture {
	t.Helper()
	ps, err := ParsePolicies("test.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewPolicies(ps)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := NewIdentities(nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	f := &fixture{mr: mr, clock: clk, audit: &audittest.Log{}, ended: make(chan *Grant, 10)}
	f.svc, err = New(Config{
		Redis: rdb, Policies: set, Identities: ids, Audit: f.audit,
		Targets: []string{"demo"}, Now: clk.Now,
		OnGrantEnd: func(_ context.Context, g *Grant) { f.ended <- g },
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) request(t testing.TB, by Principal, policy string) *Grant {
	t.Helper()
	g, err := f.svc.RequestGrant(context.Background(), by, GrantRequest{Policy: policy, Namespace: "demo", Reason: "debug incident 42"})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (f *fixture) session(t testing.TB, user string, groups ...string) (*Session, secret.Value) {
	t.Helper()
	s, sec, err := f.svc.CreateSession(context.Background(), runner, SessionRequest{Agent: "claude", User: user, Groups: groups})
	if err != nil {
		t.Fatal(err)
	}
	return s, sec
}

func (f *fixture) activeIDs(t *testing.T, sessionID string) []string {
	t.Helper()
	a, err := f.svc.ActiveGrants(context.Background(), sessionID)
	if err != nil {
		t.Fatal(err)
	}
	ids := []string{}
	for _, g := range a.Grants {
		ids = append(ids, g.ID)
	}
	return ids
}

func TestRequestGrantWithoutApprovalIsActiveAtOnce(t *testing.T) {
	f := newFixture(t)
	g := f.request(t, alice, "reader")
	now := f.clock.Now()
	if g.State != StateActive || !g.ExpiresAt.Equal(now.Add(15*time.Minute)) || !g.ActivatedAt.Equal(now) {
		t.Errorf("grant = %s, expires %v; want ACTIVE until %v", g.State, g.ExpiresAt, now.Add(15*time.Minute))
	}
	if diff := cmp.Diff([]string{audit.TypeGrantRequested, audit.TypeGrantActivated}, f.audit.Types()); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
	s, _ := f.session(t, "alice", "developers")
	if diff := cmp.Diff([]string{g.ID}, f.activeIDs(t, s.ID)); diff != "" {
		t.Errorf("ActiveGrants (-want +got):\n%s", diff)
	}
}

func TestRequestGrantRejects(t *testing.T) {
	tests := []struct {
		name    string
		by      Principal
		req     GrantRequest
		wantErr error
		wantMsg string
	}{
		{name: "unknown policy", by: alice, req: GrantRequest{Policy: "nope", Namespace: "demo", Reason: "r"}, wantErr: ErrNotFound, wantMsg: `access policy "nope"`},
		{name: "not a subject", by: bob, req: GrantRequest{Policy: "reader", Namespace: "demo", Reason: "r"}, wantErr: ErrForbidden, wantMsg: `bob may not request access policy "reader"`},
		{name: "namespace outside policy", by: alice, req: GrantRequest{Policy: "reader", Namespace: "prod", Reason: "r"}, wantErr: ErrInvalid, wantMsg: `allows namespaces [demo staging], not "prod"`},
		{name: "no namespace", by: alice, req: GrantRequest{Policy: "reader", Reason: "r"}, wantErr: ErrInvalid, wantMsg: `access policy "reader" is namespaced; request it with a namespace`},
		{name: "duration over max", by: alice, req: GrantRequest{Policy: "reader", Namespace: "demo", Duration: 2 * time.Hour, Reason: "r"}, wantErr: ErrInvalid, wantMsg: `duration 2h0m0s exceeds the maximum 1h0m0s of access policy "reader"`},
		{name: "negative duration", by: alice, req: GrantRequest{Policy: "reader", Namespace: "demo", Duration: -time.Minute, Reason: "r"}, wantErr: ErrInvalid, wantMsg: "positive"},
		{name: "no reason", by: alice, req: GrantRequest{Policy: "reader", Namespace: "demo"}, wantErr: ErrInvalid, wantMsg: "reason is required"},
		{name: "target not served", by: alice, req: GrantRequest{Policy: "elsewhere", Namespace: "demo", Reason: "r"}, wantErr: ErrInvalid, wantMsg: `target "other-cluster"`},
		{name: "someone else's session", by: alice, req: GrantRequest{Policy: "reader", Namespace: "demo", Reason: "r", Session: "s-aaaaaaaaaaaaaaaa"}, wantErr: ErrInvalid, wantMsg: "has no session"},
	}
	for _, tt := range tests {
		for _, dry := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/dry-run=%v", tt.name, dry), func(t *testing.T) {
				f := newFixture(t)
				req := tt.req
				req.DryRun = dry
				_, err := f.svc.RequestGrant(context.Background(), tt.by, req)
				if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Errorf("RequestGrant() error = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				if n := len(f.audit.Types()); n != 0 {
					t.Errorf("a refused request left %d audit events", n)
				}
			})
		}
	}
}

// TestRequestGrantDryRun: a dry run says what the request would create
// and creates, records and announces nothing.
func TestRequestGrantDryRun(t *testing.T) {
	tests := []struct {
		policy    string
		wantState State
	}{
		{policy: "reader", wantState: StateActive},
		{policy: "editor", wantState: StatePending},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t)
			g, err := f.svc.RequestGrant(ctx, alice, GrantRequest{Policy: tt.policy, Namespace: "demo", Reason: "r", DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			if g.ID != "" || g.State != tt.wantState || g.Policy != tt.policy || g.Namespace != "demo" || g.Duration == 0 || len(g.Permissions) == 0 {
				t.Errorf("dry run answered %+v", g)
			}
			if tt.wantState == StatePending && (g.RequiredApprovals != 2 || g.Waiting() != "2 approvals from sre") {
				t.Errorf("approvals: %d, waiting for %q", g.RequiredApprovals, g.Waiting())
			}
			if gs, err := f.svc.List(ctx, admin, ListFilter{}); err != nil || len(gs) != 0 {
				t.Errorf("stored: %v %v", gs, err)
			}
			if n := len(f.audit.Types()); n != 0 {
				t.Errorf("a dry run left %d audit events", n)
			}
		})
	}
}

func TestApprovalMakesGrantActive(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	g := f.request(t, carol, "editor")
	if g.State != StatePending {
		t.Fatalf("state = %s, want PENDING", g.State)
	}
	g, err := f.svc.Approve(ctx, bob, g.ID, "ok")
	if err != nil || g.State != StatePending {
		t.Fatalf("after one of two approvals: %v, %v; want PENDING", g, err)
	}
	f.clock.Advance(time.Minute)
	g, err = f.svc.Approve(ctx, dave, g.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != StateActive || !g.ExpiresAt.Equal(f.clock.Now().Add(30*time.Minute)) {
		t.Errorf("after two approvals: %s until %v, want ACTIVE for 30m from the last approval", g.State, g.ExpiresAt)
	}
	want := []string{audit.TypeGrantRequested, audit.TypeGrantApproved, audit.TypeGrantApproved, audit.TypeGrantActivated}
	if diff := cmp.Diff(want, f.audit.Types()); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
}

func TestApproveRefuses(t *testing.T) {
	agent := Principal{Name: "bob", Groups: []string{"sre"}, Session: "s-aaaaaaaaaaaaaaaa", Agent: "claude"}
	tests := []struct {
		name    string
		by      Principal
		before  func(f *fixture, id string)
		wantErr error
		wantMsg string
	}{
		{name: "own request", by: carol, wantErr: ErrForbidden, wantMsg: "carol cannot approve or deny their own request"},
		{name: "not an approver", by: alice, wantErr: ErrForbidden, wantMsg: `alice is not an approver of access policy "editor"`},
		{name: "agent", by: agent, wantErr: ErrForbidden, wantMsg: "agents cannot approve"},
		{
			name: "twice by one approver", by: bob,
			before:  func(f *fixture, id string) { f.svc.Approve(context.Background(), bob, id, "") },
			wantErr: ErrConflict, wantMsg: "bob has already approved",
		},
		{
			name: "after denial", by: bob,
			before:  func(f *fixture, id string) { f.svc.Deny(context.Background(), dave, id, "no") },
			wantErr: ErrConflict, wantMsg: "is DENIED, not PENDING",
		},
		{
			name: "after approval timeout", by: bob,
			before:  func(f *fixture, id string) { f.clock.Advance(10 * time.Minute) },
			wantErr: ErrConflict, wantMsg: "is EXPIRED, not PENDING",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			g := f.request(t, carol, "editor")
			if tt.before != nil {
				tt.before(f, g.ID)
			}
			_, err := f.svc.Approve(context.Background(), tt.by, g.ID, "")
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("Approve() error = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestDenyEndsRequest(t *testing.T) {
	f := newFixture(t)
	g := f.request(t, alice, "editor")
	if _, err := f.svc.Deny(context.Background(), alice, g.ID, "changed my mind"); !errors.Is(err, ErrForbidden) {
		t.Errorf("Deny() by the requester: %v, want ErrForbidden", err)
	}
	g, err := f.svc.Deny(context.Background(), bob, g.ID, "not during the freeze")
	if err != nil {
		t.Fatal(err)
	}
	if g.State != StateDenied || g.Denial.By != "bob" || g.EndReason != "not during the freeze" {
		t.Errorf("denied grant = %+v", g)
	}
	select {
	case e := <-f.ended:
		t.Errorf("OnGrantEnd called for a grant that was never active: %s", e.ID)
	default:
	}
}

func TestRevokeEndsActiveGrant(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, _ := f.session(t, "alice", "developers")
	g := f.request(t, alice, "reader")
	if _, err := f.svc.Revoke(ctx, Principal{Name: "eve"}, g.ID, ""); !errors.Is(err, ErrNotFound) {
		t.Errorf("Revoke() by a stranger: %v, want ErrNotFound", err)
	}
	if _, err := f.svc.Revoke(ctx, alice, g.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if ids := f.activeIDs(t, s.ID); len(ids) != 0 {
		t.Errorf("ActiveGrants after revoke = %v, want none", ids)
	}
	if e := <-f.ended; e.ID != g.ID || e.State != StateRevoked {
		t.Errorf("OnGrantEnd got %s %s", e.ID, e.State)
	}
	if _, err := f.svc.Revoke(ctx, admin, g.ID, ""); !errors.Is(err, ErrConflict) {
		t.Errorf("second Revoke() = %v, want ErrConflict", err)
	}
	got, err := f.svc.Get(ctx, alice, g.ID)
	if err != nil || got.State != StateRevoked || got.EndedBy != "alice" {
		t.Errorf("Get() = %+v, %v", got, err)
	}
}

func TestExpiry(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	s, _ := f.session(t, "alice", "developers")
	g := f.request(t, alice, "reader")
	pending := f.request(t, alice, "editor")

	f.clock.Advance(15 * time.Minute)
	// Past expiry, before any reaping: never treated as active.
	if ids := f.activeIDs(t, s.ID); len(ids) != 0 {
		t.Errorf("ActiveGrants at expiry = %v, want none", ids)
	}
	if got, _ := f.svc.Get(ctx, alice, g.ID); got.State != StateExpired {
		t.Errorf("Get() state = %s, want EXPIRED", got.State)
	}
	f.svc.Reap(ctx)
	f.svc.Reap(ctx) // a second pass must not end anything twice
	if e := <-f.ended; e.ID != g.ID || e.State != StateExpired || e.EndedBy != "jitproxy" {
		t.Errorf("OnGrantEnd got %s %s by %s", e.ID, e.State, e.EndedBy)
	}
	want := []string{
		audit.TypeSessionCreated,
		audit.TypeGrantRequested, audit.TypeGrantActivated,
		audit.TypeGrantRequested,
		audit.TypeGrantExpired, audit.TypeGrantExpired, // the active grant, and the pending one past its 10m timeout
	}
	if diff := cmp.Diff(want, f.audit.Types()); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
	if got, _ := f.svc.Get(ctx, alice, pending.ID); got.State != StateExpired {
		t.Errorf("pending grant state = %s, want EXPIRED", got.State)
	}
	if len(f.ended) != 0 {
		t.Error("OnGrantEnd called for the pending grant")
	}
}

func TestSessions(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	if _, _, err := f.svc.CreateSession(ctx, alice, SessionRequest{Agent: "a", User: "alice"}); !errors.Is(err, ErrForbidden) {
		t.Errorf("CreateSession() by a non-runner = %v, want ErrForbidden", err)
	}
	if _, _, err := f.svc.CreateSession(ctx, runner, SessionRequest{Agent: "a", User: "alice", TTL: 48 * time.Hour}); !errors.Is(err, ErrInvalid) {
		t.Errorf("CreateSession() over max ttl = %v, want ErrInvalid", err)
	}
	s, sec := f.session(t, "alice", "developers")
	if _, err := f.svc.AuthenticateSession(ctx, s.ID, sec); err != nil {
		t.Errorf("AuthenticateSession() = %v", err)
	}
	if _, err := f.svc.AuthenticateSession(ctx, s.ID, sec+"x"); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("wrong secret: %v, want ErrUnauthenticated", err)
	}
	if _, err := f.svc.AuthenticateSession(ctx, "s-aaaaaaaaaaaaaaaa", sec); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("unknown session: %v, want ErrUnauthenticated", err)
	}
	agent := Principal{Name: "alice", Groups: []string{"developers"}, Session: s.ID, Agent: "claude"}
	bound, err := f.svc.RequestGrant(ctx, agent, GrantRequest{Policy: "reader", Namespace: "demo", Reason: "r"})
	if err != nil || bound.Session != s.ID {
		t.Fatalf("agent's grant = %+v, %v; want bound to its session", bound, err)
	}
	other, _ := f.session(t, "alice", "developers")
	if ids := f.activeIDs(t, other.ID); len(ids) != 0 {
		t.Errorf("another session of the user sees the session-bound grant: %v", ids)
	}
	if err := f.svc.EndSession(ctx, alice, s.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("EndSession() by the user (not its runner) = %v, want ErrNotFound", err)
	}
	if err := f.svc.EndSession(ctx, runner, s.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := f.svc.Get(ctx, alice, bound.ID); got.State != StateRevoked || got.EndReason != "session ended" {
		t.Errorf("grant of an ended session: %s (%s), want REVOKED", got.State, got.EndReason)
	}
	if _, err := f.svc.ActiveGrants(ctx, s.ID); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("ActiveGrants() of an ended session = %v, want ErrUnauthenticated", err)
	}
	f.clock.Advance(8 * time.Hour)
	f.mr.FastForward(8 * time.Hour)
	if _, err := f.svc.AuthenticateSession(ctx, other.ID, sec); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("expired session: %v, want ErrUnauthenticated", err)
	}
}

// TestReplicaSeesRevocation checks that a revocation on one replica empties
// the cache of another through the changes channel.
func TestReplicaSeesRevocation(t *testing.T) {
	a := newFixture(t)
	b := newFixtureOn(t, a.mr, a.clock)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.svc.Run(ctx)
	waitFor(t, "replica b to subscribe", func() bool { b.svc.cache.mu.Lock(); defer b.svc.cache.mu.Unlock(); return b.svc.cache.ready })

	s, _ := a.session(t, "alice", "developers")
	g := a.request(t, alice, "reader")
	waitFor(t, "replica b to cache the grant", func() bool {
		if ids := b.activeIDs(t, s.ID); len(ids) != 1 {
			t.Fatalf("replica b sees %v, want the grant", ids)
		}
		_, _, cached := b.svc.cache.get(s.ID)
		return cached
	})
	if _, err := a.svc.Revoke(ctx, alice, g.ID, ""); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "replica b to drop the revoked grant", func() bool { return len(b.activeIDs(t, s.ID)) == 0 })
}

func TestCacheBypassedWhenNotSubscribed(t *testing.T) {
	a := newFixture(t)
	b := newFixtureOn(t, a.mr, a.clock) // never Run: no subscription
	s, _ := a.session(t, "alice", "developers")
	g := a.request(t, alice, "reader")
	if ids := b.activeIDs(t, s.ID); len(ids) != 1 {
		t.Fatalf("replica b sees %v, want the grant", ids)
	}
	if _, err := a.svc.Revoke(context.Background(), alice, g.ID, ""); err != nil {
		t.Fatal(err)
	}
	if ids := b.activeIDs(t, s.ID); len(ids) != 0 {
		t.Errorf("unsubscribed replica served a revoked grant from cache: %v", ids)
	}
}

// echoed waits until replica f, running, has the messages of the first n
// changes it made itself: it applies each change to its cache when it
// makes it and again when the message comes back, which drops what was
// loaded in between.
func echoed(t testing.TB, f *fixture, n int) {
	t.Helper()
	waitFor(t, "the replica to get its own changes' messages", func() bool {
		f.svc.cache.mu.Lock()
		defer f.svc.cache.mu.Unlock()
		return f.svc.cache.seq >= uint64(2*n)
	})
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestActiveGrantsIsStableWhileUnchanged: ActiveGrants returns the same
// *Active until the grants in force change (by expiry or by a change), so
// that the data plane can keep what it derives from them.
func TestActiveGrantsIsStableWhileUnchanged(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	runReplica(t, f)
	s, _ := f.session(t, "alice", "developers")
	g := f.request(t, alice, "reader")
	echoed(t, f, 1)
	active := func() *Active {
		t.Helper()
		a, err := f.svc.ActiveGrants(ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a1 := active()
	if len(a1.Grants) != 1 || a1.Grants[0].ID != g.ID {
		t.Fatalf("ActiveGrants() = %+v, want %s", a1.Grants, g.ID)
	}
	f.clock.Advance(time.Minute)
	if a2 := active(); a2 != a1 {
		t.Error("ActiveGrants() returned another *Active though nothing changed")
	}
	// A second grant: another set.
	g2 := f.request(t, alice, "reader")
	echoed(t, f, 2)
	a3 := active()
	if a3 == a1 || len(a3.Grants) != 2 {
		t.Errorf("after a new grant, ActiveGrants() = %d grants, same pointer %v; want 2, another", len(a3.Grants), a3 == a1)
	}
	// The first grant expires: another set, without g.
	f.clock.Advance(14 * time.Minute)
	a4 := active()
	if a4 == a3 || len(a4.Grants) != 1 || a4.Grants[0].ID != g2.ID {
		t.Errorf("after expiry, ActiveGrants() = %+v, same pointer %v; want only %s", a4.Grants, a4 == a3, g2.ID)
	}
	if a5 := active(); a5 != a4 {
		t.Error("ActiveGrants() returned another *Active though nothing changed")
	}
}
