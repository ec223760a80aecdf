package jit

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// activeCache holds, per session, the session and its user's live grants, so
// that the data plane does not go to Redis on every request. Every change is
// published on the changes channel; any message empties the cache (changes
// are rare, and a full flush cannot miss a dependency). While the
// subscription is down the cache is bypassed, since a missed message would
// leave revoked grants cached.
type activeCache struct {
	mu      sync.Mutex
	ready   bool   // subscribed: messages will arrive
	gen     uint64 // bumped on every flush, so a load that raced one is dropped
	entries map[string]*cacheEntry
}

type cacheEntry struct {
	session *Session
	grants  []*Grant // live as recorded; filtered by time on read

	active atomic.Pointer[Active] // grants in force, last computed
}

func newActiveCache() *activeCache {
	return &activeCache{entries: map[string]*cacheEntry{}}
}

// get returns the cached entry and true, or the generation to pass to put.
func (c *activeCache) get(sessionID string) (*cacheEntry, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.ready {
		return nil, c.gen, false
	}
	e, ok := c.entries[sessionID]
	return e, c.gen, ok
}

// put stores e unless the cache was flushed since gen was read.
func (c *activeCache) put(sessionID string, gen uint64, e *cacheEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ready && c.gen == gen {
		c.entries[sessionID] = e
	}
}

// invalidate empties the cache after a change this process made, without
// waiting for the change's message to come back.
func (c *activeCache) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	clear(c.entries)
}

func (c *activeCache) flush(ready bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ready = ready
	c.gen++
	clear(c.entries)
}

// follow subscribes to the changes channel and flushes the cache on every
// message, until ctx ends. It passes every message's payload to changed,
// and calls subscribed whenever a subscription is (re)established, since
// messages may have been missed before it.
func (c *activeCache) follow(ctx context.Context, rdb redis.UniversalClient, channel string, log *slog.Logger, changed func(payload string), subscribed func()) {
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
			c.flush(true)
			if lost {
				log.Info("grant change subscription restored")
				lost = false
			}
			subscribed()
		case *redis.Message:
			c.flush(true)
			changed(m.Payload)
		}
	}
}
