package jit

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/redistest"
)

// cachedState says what replica f has cached for session id: "none", a
// session whose grants are not loaded, or "loaded".
func cachedState(f *fixture, id string) string {
	e, _, ok := f.svc.cache.get(id)
	switch {
	case !ok:
		return "none"
	case !e.loaded:
		return "session"
	}
	return "loaded"
}

// TestChangeDropsOnlyItsUsersCache: on a replica that has two users'
// sessions cached, a change another replica makes to one user's grants
// drops that user's grants, keeps that user's session, and leaves the
// other user's entry as it was; a session's end drops that session; a
// message that names no user (an older replica's) or cannot be read
// empties the whole cache.
func TestChangeDropsOnlyItsUsersCache(t *testing.T) {
	tests := []struct {
		name string
		// change acts on replica a, or publishes raw on the changes channel;
		// alice's first session is s1.
		change func(t *testing.T, a *fixture, s1 *Session, g *Grant)
		// What replica b has cached afterwards for alice's sessions s1 and
		// s2 and for carol's session.
		want []string
	}{
		{name: "a new grant of alice's", want: []string{"session", "session", "loaded"}, change: func(t *testing.T, a *fixture, _ *Session, _ *Grant) {
			a.request(t, alice, "reader")
		}},
		{name: "a grant of alice's revoked", want: []string{"session", "session", "loaded"}, change: func(t *testing.T, a *fixture, _ *Session, g *Grant) {
			if _, err := a.svc.Revoke(context.Background(), alice, g.ID, "done"); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a session of alice's ended", want: []string{"none", "loaded", "loaded"}, change: func(t *testing.T, a *fixture, s1 *Session, _ *Grant) {
			if err := a.svc.EndSession(context.Background(), runner, s1.ID); err != nil {
				t.Fatal(err)
			}
		}},
		{name: "a message without a user", want: []string{"none", "none", "none"}, change: func(t *testing.T, a *fixture, _ *Session, g *Grant) {
			a.mr.Publish(a.svc.store.changesChannel(), "grant:"+g.ID)
		}},
		{name: "a message it cannot read", want: []string{"none", "none", "none"}, change: func(t *testing.T, a *fixture, _ *Session, _ *Grant) {
			a.mr.Publish(a.svc.store.changesChannel(), "policy:reloaded")
		}},
	}
	if userBucket("alice") == userBucket("carol") {
		t.Fatal("alice and carol share a bucket; pick other users")
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := newFixture(t)
			b := newFixtureOn(t, a.mr, a.clock)
			runReplica(t, b)
			s1, _ := a.session(t, "alice", "developers")
			s2, _ := a.session(t, "alice", "developers")
			sc, _ := a.session(t, "carol", "developers")
			g := a.request(t, alice, "reader")
			a.request(t, carol, "reader")
			// b caches all three once the messages of these two grants are in.
			waitFor(t, "replica b to get the grants' messages", func() bool {
				b.svc.cache.mu.Lock()
				defer b.svc.cache.mu.Unlock()
				return b.svc.cache.seq == 2
			})
			sessions := []string{s1.ID, s2.ID, sc.ID}
			waitFor(t, "replica b to cache every session", func() bool {
				for _, id := range sessions {
					if len(b.activeIDs(t, id)) != 1 || cachedState(b, id) != "loaded" {
						return false
					}
				}
				return true
			})
			carolBefore, _, _ := b.svc.cache.get(sc.ID)

			tt.change(t, a, s1, g)
			var got []string
			waitFor(t, "replica b to apply the change", func() bool {
				got = got[:0]
				for _, id := range sessions {
					got = append(got, cachedState(b, id))
				}
				return cmp.Equal(tt.want, got)
			})
			if carol, _, ok := b.svc.cache.get(sc.ID); tt.want[2] == "loaded" && (!ok || carol != carolBefore) {
				t.Error("carol's entry was replaced by a change that was not hers")
			}
		})
	}
}

// TestActiveGrantsAfterAGrantChangeIsOneRoundTrip: a session stays cached
// when its user's grants change, and the change's grant is read together
// with the user's index, so that the first request after a grant request
// costs one round trip to Redis.
func TestActiveGrantsAfterAGrantChangeIsOneRoundTrip(t *testing.T) {
	f := newFixture(t)
	runReplica(t, f)
	rt := &redistest.RoundTrips{}
	f.svc.cfg.Redis.(*redis.Client).AddHook(rt)
	s, _ := f.session(t, "alice", "developers")
	if ids := f.activeIDs(t, s.ID); len(ids) != 0 {
		t.Fatalf("ActiveGrants() = %v before any grant", ids)
	}
	g := f.request(t, alice, "reader")
	rt.Take()
	if ids := f.activeIDs(t, s.ID); !cmp.Equal(ids, []string{g.ID}) {
		t.Fatalf("ActiveGrants() = %v, want [%s]", ids, g.ID)
	}
	if diff := cmp.Diff([][]string{{"smembers", "mget"}}, rt.Take()); diff != "" {
		t.Errorf("round trips of the first ActiveGrants after the grant (-want +got):\n%s", diff)
	}
}

// TestLiveGrantsReadsAhead: liveGrants returns the user's live grants
// whatever it is told to read ahead, in one round trip when that covers
// them.
func TestLiveGrantsReadsAhead(t *testing.T) {
	tests := []struct {
		name string
		// likely picks from the live grants l1, l2 and the ended e.
		likely     func(l1, l2, e string) []string
		roundTrips [][]string
	}{
		{name: "nothing", likely: func(string, string, string) []string { return nil },
			roundTrips: [][]string{{"smembers"}, {"mget"}}},
		{name: "every live grant", likely: func(l1, l2, _ string) []string { return []string{l2, l1} },
			roundTrips: [][]string{{"smembers", "mget"}}},
		{name: "an ended grant and one that never was", likely: func(l1, l2, e string) []string { return []string{l1, l2, e, "g-none"} },
			roundTrips: [][]string{{"smembers", "mget"}}},
		{name: "one live grant of two", likely: func(l1, _, _ string) []string { return []string{l1} },
			roundTrips: [][]string{{"smembers", "mget"}, {"mget"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			l1, l2 := f.request(t, alice, "reader"), f.request(t, alice, "reader")
			e := f.request(t, alice, "reader")
			if _, err := f.svc.Revoke(context.Background(), alice, e.ID, "done"); err != nil {
				t.Fatal(err)
			}
			f.request(t, carol, "reader") // another user's
			rt := &redistest.RoundTrips{}
			f.svc.cfg.Redis.(*redis.Client).AddHook(rt)
			got, err := f.svc.store.liveGrants(context.Background(), "alice", tt.likely(l1.ID, l2.ID, e.ID))
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, g := range got {
				ids = append(ids, g.ID)
			}
			slices.Sort(ids)
			want := []string{l1.ID, l2.ID}
			slices.Sort(want)
			if diff := cmp.Diff(want, ids); diff != "" {
				t.Errorf("liveGrants() IDs (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.roundTrips, rt.Take()); diff != "" {
				t.Errorf("round trips (-want +got):\n%s", diff)
			}
		})
	}
}

// TestCacheDropsARacingLoad: a load that read Redis before a change of its
// user and is stored after it is dropped; one that raced another user's
// change is kept, and so is everything after a full flush only if loaded
// after it.
func TestCacheDropsARacingLoad(t *testing.T) {
	expires := time.Date(2026, 11, 26, 17, 0, 0, 0, time.UTC)
	entry := func(user string) *cacheEntry {
		return &cacheEntry{session: &storedSession{Session: Session{ID: "s-" + user, User: user, ExpiresAt: expires}}, loaded: true}
	}
	tests := []struct {
		name   string
		during func(c *activeCache)
		want   bool
	}{
		{name: "no change", during: func(*activeCache) {}, want: true},
		{name: "its user's grant changed", during: func(c *activeCache) { c.change("grant", "g-1", "alice") }, want: false},
		{name: "its user's other session ended", during: func(c *activeCache) { c.change("session", "s-2", "alice") }, want: false},
		{name: "another user's grant changed", during: func(c *activeCache) { c.change("grant", "g-1", "carol") }, want: true},
		{name: "everything flushed", during: func(c *activeCache) { c.flush(true) }, want: false},
		{name: "subscription lost", during: func(c *activeCache) { c.flush(false) }, want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newActiveCache()
			c.flush(true)
			_, ticket, _ := c.get("s-alice")
			tt.during(c)
			c.put("s-alice", ticket, entry("alice"))
			c.ready = true // to look, even after the subscription was lost
			if _, _, ok := c.get("s-alice"); ok != tt.want {
				t.Errorf("entry stored = %v, want %v", ok, tt.want)
			}
		})
	}
}

// TestCacheForgetsExpiredSessions: Reap drops the cached sessions that
// have expired, which no message would.
func TestCacheForgetsExpiredSessions(t *testing.T) {
	f := newFixture(t)
	runReplica(t, f)
	short, _, err := f.svc.CreateSession(context.Background(), runner, SessionRequest{Agent: "claude", User: "alice", Groups: []string{"developers"}, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	long, _ := f.session(t, "alice", "developers") // 8h
	f.activeIDs(t, short.ID)
	f.activeIDs(t, long.ID)
	f.clock.Advance(2 * time.Hour)
	f.svc.Reap(context.Background())
	if got := []string{cachedState(f, short.ID), cachedState(f, long.ID)}; !cmp.Equal(got, []string{"none", "loaded"}) {
		t.Errorf("cached after Reap: expired session %s, live one %s; want none, loaded", got[0], got[1])
	}
	f.svc.cache.mu.Lock()
	defer f.svc.cache.mu.Unlock()
	if diff := cmp.Diff(map[string]map[string]struct{}{"alice": {long.ID: {}}}, f.svc.cache.byUser); diff != "" {
		t.Errorf("sessions by user (-want +got):\n%s", diff)
	}
}

func TestParseChange(t *testing.T) {
	tests := []struct {
		name, payload  string
		kind, id, user string
		ok             bool
	}{
		{name: "grant", payload: changeMessage("grant", "g-abc", "alice"), kind: "grant", id: "g-abc", user: "alice", ok: true},
		{name: "session", payload: changeMessage("session", "s-abc", "alice"), kind: "session", id: "s-abc", user: "alice", ok: true},
		{name: "user with a colon", payload: changeMessage("grant", "g-abc", "system:alice"), kind: "grant", id: "g-abc", user: "system:alice", ok: true},
		{name: "older replica's grant", payload: "grant:g-abc", kind: "grant", id: "g-abc"},
		{name: "older replica's session", payload: "session:s-abc", kind: "session", id: "s-abc"},
		{name: "empty user", payload: "grant:g-abc:", kind: "grant", id: "g-abc"},
		{name: "unknown kind", payload: "policy:p:alice", kind: "policy", id: "p", user: "alice"},
		{name: "no id", payload: "grant::alice", kind: "grant", user: "alice"},
		{name: "nothing", payload: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			kind, id, user, ok := parseChange(tt.payload)
			if diff := cmp.Diff([]any{tt.kind, tt.id, tt.user, tt.ok}, []any{kind, id, user, ok}); diff != "" {
				t.Errorf("parseChange(%q) (-want +got):\n%s", tt.payload, diff)
			}
		})
	}
}
