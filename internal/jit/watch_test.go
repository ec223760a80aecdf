package jit

import (
	"context"
	"testing"
	"time"
)

// runReplica starts replica f's Run and waits until it is subscribed.
func runReplica(t testing.TB, f *fixture) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.svc.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitFor(t, "the replica to subscribe", func() bool {
		f.svc.cache.mu.Lock()
		defer f.svc.cache.mu.Unlock()
		return f.svc.cache.ready
	})
}

// watchEnd watches sessionID on svc with an onEnd that closes done: a
// second call of onEnd would panic the test.
func watchEnd(svc *Service, sessionID string) (done <-chan struct{}, setGrant func(string), stop func()) {
	ch := make(chan struct{})
	setGrant, stop = svc.Watch(sessionID, func() { close(ch) })
	return ch, setGrant, stop
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// TestWatchEndsOnAnotherReplica: a request's watch on replica a ends when
// replica b revokes its grant or ends its session, and not when something
// else changes.
func TestWatchEndsOnAnotherReplica(t *testing.T) {
	tests := []struct {
		name string
		// end changes state on replica b; ends says whether the watch must end.
		end  func(t *testing.T, b *fixture, s *Session, g, other *Grant)
		ends bool
	}{
		{name: "its grant revoked", ends: true, end: func(t *testing.T, b *fixture, _ *Session, g, _ *Grant) {
			if _, err := b.svc.Revoke(context.Background(), alice, g.ID, "done"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "its session ended", ends: true, end: func(t *testing.T, b *fixture, s *Session, _, _ *Grant) {
			if err := b.svc.EndSession(context.Background(), runner, s.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "another grant revoked", ends: false, end: func(t *testing.T, b *fixture, _ *Session, _, other *Grant) {
			if _, err := b.svc.Revoke(context.Background(), alice, other.ID, "done"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newFixture(t)
			b := newFixtureOn(t, a.mr, a.clock)
			runReplica(t, a)
			s, _ := a.session(t, "alice", "developers")
			g := a.request(t, alice, "reader")
			other := a.request(t, alice, "reader")
			done, setGrant, stop := watchEnd(a.svc, s.ID)
			defer stop()
			setGrant(g.ID)
			tt.end(t, b, s, g, other)
			if tt.ends {
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("the watch did not end")
				}
				return
			}
			// Give a wrong ending the time to happen.
			time.Sleep(100 * time.Millisecond)
			if isClosed(done) {
				t.Error("the watch ended for a change to something it does not follow")
			}
		})
	}
}

// TestWatchSeesAChangeBeforeItsGrantIsNamed: the grant is revoked after the
// watch began but before the request named its grant (while it was being
// decided). Naming the grant then ends the watch.
func TestWatchSeesAChangeBeforeItsGrantIsNamed(t *testing.T) {
	a := newFixture(t)
	b := newFixtureOn(t, a.mr, a.clock)
	runReplica(t, a)
	s, _ := a.session(t, "alice", "developers")
	g := a.request(t, alice, "reader")
	done, setGrant, stop := watchEnd(a.svc, s.ID)
	defer stop()
	if _, err := b.svc.Revoke(context.Background(), alice, g.ID, "done"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the change to reach replica a", func() bool {
		a.svc.watches.mu.Lock()
		defer a.svc.watches.mu.Unlock()
		for w := range a.svc.watches.watches {
			if w.pending[g.ID] {
				return true
			}
		}
		return false
	})
	setGrant(g.ID)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end")
	}
}

// TestWatchRechecksAfterResubscribing: a revocation made while replica a's
// subscription was down is caught when it subscribes again.
func TestWatchRechecksAfterResubscribing(t *testing.T) {
	a := newFixture(t)
	s, _ := a.session(t, "alice", "developers")
	g := a.request(t, alice, "reader")
	done, setGrant, stop := watchEnd(a.svc, s.ID) // before Run: no subscription yet
	defer stop()
	setGrant(g.ID)
	b := newFixtureOn(t, a.mr, a.clock)
	if _, err := b.svc.Revoke(context.Background(), alice, g.ID, "done"); err != nil {
		t.Fatal(err)
	}
	if isClosed(done) {
		t.Fatal("the watch ended without a subscription")
	}
	runReplica(t, a)
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the watch did not end after the subscription came up")
	}
}
