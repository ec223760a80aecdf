package jit

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// activeCache holds, per session, the session and its user's live grants, so
// that the data plane does not go to Redis on every request. Every change is
// published on the changes channel, naming what changed and whose it is
// (see changeMessage). A change to a user's grants drops the grants cached
// for that user's sessions and nobody else's; the sessions themselves stay
// cached, since a session changes only by ending, which is a change of its
// own and drops it. A message that names no user (from an older replica, or
// one this version cannot read) empties the whole cache. While the
// subscription is down the cache is bypassed, since a missed message would
// leave revoked grants cached.
//
// A load races the changes made while it reads Redis: get hands out a
// ticket, and put drops the load if, since the ticket, the cache was
// emptied or the load's user (or another user hashed to the same bucket)
// changed.
type activeCache struct {
	// subscribed mirrors ready, for readers that do not take mu (the view
	// of the locks).
	subscribed atomic.Bool

	mu      sync.Mutex
	ready   bool                           // subscribed: messages will arrive
	gen     uint64                         // bumped whenever everything is dropped
	seq     uint64                         // bumped on every change of a user's
	changed [userBuckets]uint64            // by bucket of users: seq of the last change
	entries map[string]*cacheEntry         // by session ID
	byUser  map[string]map[string]struct{} // user → session IDs in entries
}

// userBuckets is the number of buckets users are hashed to, for put to tell
// whether a user changed during a load without remembering every user.
const userBuckets = 256

// maxLikely bounds the grant IDs an entry keeps to read ahead.
const maxLikely = 64

// cacheTicket is what get hands out for put.
type cacheTicket struct{ gen, seq uint64 }

type cacheEntry struct {
	session *storedSession
	// grants are the user's live grants as recorded, filtered by time on
	// read; meaningful only if loaded. An entry whose user's grants changed
	// keeps its session and is not loaded.
	grants []*Grant
	loaded bool
	// likely are, in an entry not loaded, the IDs of the grants it had and
	// of those changed since: the grants the load will likely find.
	likely []string

	active atomic.Pointer[Active] // grants in force, last computed
}

func newActiveCache() *activeCache {
	return &activeCache{entries: map[string]*cacheEntry{}, byUser: map[string]map[string]struct{}{}}
}

// userBucket hashes user (FNV-1a) to one of userBuckets. Users that share
// a bucket only make a racing load be dropped now and then.
func userBucket(user string) int {
	h := uint32(2166136261)
	for i := range len(user) {
		h ^= uint32(user[i])
		h *= 16777619
	}
	return int(h % userBuckets)
}

// get returns the cached entry (its grants loaded or not) and true, or
// false, and in both cases the ticket to pass to put.
func (c *activeCache) get(sessionID string) (*cacheEntry, cacheTicket, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := cacheTicket{c.gen, c.seq}
	if !c.ready {
		return nil, t, false
	}
	e, ok := c.entries[sessionID]
	return e, t, ok
}

// put stores e, loaded under ticket t, unless a change since t may have
// been missed by the load.
func (c *activeCache) put(sessionID string, t cacheTicket, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	user := e.session.User
	if !c.ready || c.gen != t.gen || c.changed[userBucket(user)] > t.seq {
		return
	}
	c.entries[sessionID] = e
	if c.byUser[user] == nil {
		c.byUser[user] = map[string]struct{}{}
	}
	c.byUser[user][sessionID] = struct{}{}
}

// change drops what a change of kind ("grant" or "session") to id, whose
// user is user, makes stale: for a grant the grants of user's sessions, for
// a session that session.
func (c *activeCache) change(kind, id, user string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.seq++
	c.changed[userBucket(user)] = c.seq
	switch kind {
	case "grant":
		for sid := range c.byUser[user] {
			old := c.entries[sid]
			likely := old.likely
			if old.loaded {
				likely = make([]string, 0, len(old.grants)+1)
				for _, g := range old.grants {
					likely = append(likely, g.ID)
				}
			}
			if len(likely) < maxLikely && !slices.Contains(likely, id) {
				likely = append(slices.Clip(likely), id)
			}
			c.entries[sid] = &cacheEntry{session: old.session, likely: likely}
		}
	case "session":
		c.drop(id)
	}
}

// drop forgets the session id. Called with mu held.
func (c *activeCache) drop(id string) {
	e, ok := c.entries[id]
	if !ok {
		return
	}
	user := e.session.User
	delete(c.entries, id)
	delete(c.byUser[user], id)
	if len(c.byUser[user]) == 0 {
		delete(c.byUser, user)
	}
}

// sweep forgets the sessions expired at now, which no change would drop.
func (c *activeCache) sweep(now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, e := range c.entries {
		if !now.Before(e.session.ExpiresAt) {
			c.drop(id)
		}
	}
}

// flush drops everything; ready says whether messages will arrive.
func (c *activeCache) flush(ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = ready
	c.subscribed.Store(ready)
	c.gen++
	clear(c.entries)
	clear(c.byUser)
}

// changeMessage is the message published on the changes channel after a
// change of kind ("grant" or "session") to the grant or session id, whose
// user is user: "grant:ID:USER", "session:ID:USER". IDs hold no ':', so
// the user comes whole after the second one.
func changeMessage(kind, id, user string) string { return kind + ":" + id + ":" + user }

// parseChange reads a changes message. A message without a user
// ("grant:ID", as older replicas send) has ok false, and so has anything
// else it cannot read; kind and id are set whenever the message has them.
func parseChange(payload string) (kind, id, user string, ok bool) {
	kind, rest, _ := strings.Cut(payload, ":")
	id, user, hasUser := strings.Cut(rest, ":")
	return kind, id, user, (kind == "grant" || kind == "session") && id != "" && hasUser && user != ""
}

// follow subscribes to the changes channel and applies every message to
// the cache, until ctx ends. It passes every message's kind and ID to
// changed ("grant:ID", "session:ID", "lock:ID"), and calls subscribed
// whenever a subscription is (re)established, since messages may have been
// missed before it, before the cache is used again.
func (c *activeCache) follow(ctx context.Context, rdb redis.UniversalClient, channel string, log *slog.Logger, changed func(key string), subscribed func()) {
	ps := rdb.Subscribe(ctx, channel)
	defer ps.Close()
	defer c.flush(false)
	lost := false // logged once per outage, not on every retry
	for {
		msg, err := ps.Receive(ctx)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			// go-redis reconnects and resubscribes on the next Receive; until a
			// new subscription is confirmed, nothing may be served from cache.
			c.flush(false)
			if !lost {
				log.Warn("grant change subscription lost; bypassing the cache until it is back", "err", err)
				lost = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Subscription:
			// Before the cache is used again: what subscribed reads (the
			// locks) must be fresh by then.
			subscribed()
			c.flush(true)
			if lost {
				log.Info("grant change subscription restored")
				lost = false
			}
		case *redis.Message:
			kind, id, user, ok := parseChange(m.Payload)
			if kind == "lock" {
				// Locks are not cached with the grants.
				changed(m.Payload)
				continue
			}
			if ok {
				c.change(kind, id, user)
			} else {
				c.flush(true)
			}
			if id != "" {
				changed(kind + ":" + id)
			}
		}
	}
}
