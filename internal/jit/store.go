package jit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// store keeps sessions and grants in Redis. Keys, under a prefix:
//
//	session:ID        storedSession JSON, expiring with the session
//	grant:ID          Grant JSON; ended grants expire after the retention
//	user-grants:USER  set of the user's PENDING and ACTIVE grant IDs
//	deadlines         sorted set: PENDING/ACTIVE grant ID by deadline (ms)
//	grants            sorted set: every retained grant ID by creation (ms)
//	changes           pub/sub channel: a message after every change, naming
//	                  it and its user (changeMessage)
type store struct {
	rdb       redis.UniversalClient
	prefix    string
	retention time.Duration
	timeout   time.Duration
}

func (s *store) key(parts ...string) string {
	k := s.prefix
	for i, p := range parts {
		if i > 0 {
			k += ":"
		}
		k += p
	}
	return k
}

func (s *store) changesChannel() string { return s.key("changes") }

// call bounds one Redis operation by the store's timeout.
func (s *store) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

// putSession stores a session for ttl, its lifetime.
func (s *store) putSession(ctx context.Context, ss *storedSession, ttl time.Duration) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := json.Marshal(ss)
	if err != nil {
		return err
	}
	if err := s.rdb.Set(ctx, s.key("session", ss.ID), b, ttl).Err(); err != nil {
		return unavailable("store session", err)
	}
	return nil
}

func (s *store) getSession(ctx context.Context, id string) (*storedSession, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.key("session", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("load session", err)
	}
	var ss storedSession
	if err := json.Unmarshal(b, &ss); err != nil {
		return nil, fmt.Errorf("decode session %s: %w", id, err)
	}
	return &ss, nil
}

// deleteSession deletes the session id of user and announces it.
func (s *store) deleteSession(ctx context.Context, id, user string) (bool, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	pipe := s.rdb.TxPipeline()
	del := pipe.Del(ctx, s.key("session", id))
	pipe.Publish(ctx, s.changesChannel(), changeMessage("session", id, user))
	if _, err := pipe.Exec(ctx); err != nil {
		return false, unavailable("delete session", err)
	}
	return del.Val() > 0, nil
}

// createGrant stores a new grant with its indexes and announces it.
func (s *store) createGrant(ctx context.Context, g *Grant) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := json.Marshal(g)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.SetNX(ctx, s.key("grant", g.ID), b, 0)
	pipe.ZAdd(ctx, s.key("grants"), redis.Z{Score: ms(g.CreatedAt), Member: g.ID})
	s.index(ctx, pipe, g)
	pipe.Publish(ctx, s.changesChannel(), changeMessage("grant", g.ID, g.User))
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("store grant", err)
	}
	return nil
}

// index keeps the user set and deadline set in step with g's state, and
// gives an ended grant its retention expiry.
func (s *store) index(ctx context.Context, pipe redis.Pipeliner, g *Grant) {
	if g.State.Ended() {
		pipe.SRem(ctx, s.key("user-grants", g.User), g.ID)
		pipe.ZRem(ctx, s.key("deadlines"), g.ID)
		pipe.Expire(ctx, s.key("grant", g.ID), s.retention)
		return
	}
	pipe.SAdd(ctx, s.key("user-grants", g.User), g.ID)
	pipe.ZAdd(ctx, s.key("deadlines"), redis.Z{Score: ms(g.deadline()), Member: g.ID})
}

// errNoChange tells updateGrant that change decided to leave the grant as it is.
var errNoChange = errors.New("no change")

// updateGrant applies change to the stored grant atomically: if another
// writer changes the grant in between, change runs again on the new value.
// It returns the grant before and after the change. If change returns an
// error, nothing is written and that error is returned.
func (s *store) updateGrant(ctx context.Context, id string, change func(*Grant) error) (before, after *Grant, err error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	key := s.key("grant", id)
	for range 10 {
		err = s.rdb.Watch(ctx, func(tx *redis.Tx) error {
			b, err := tx.Get(ctx, key).Bytes()
			if errors.Is(err, redis.Nil) {
				return fmt.Errorf("grant %s: %w", id, ErrNotFound)
			}
			if err != nil {
				return unavailable("load grant", err)
			}
			before, after = new(Grant), new(Grant)
			if err := json.Unmarshal(b, before); err != nil {
				return fmt.Errorf("decode grant %s: %w", id, err)
			}
			json.Unmarshal(b, after) // Same bytes: cannot fail now.
			if err := change(after); err != nil {
				return err
			}
			nb, err := json.Marshal(after)
			if err != nil {
				return err
			}
			_, err = tx.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
				pipe.Set(ctx, key, nb, redis.KeepTTL)
				s.index(ctx, pipe, after)
				pipe.Publish(ctx, s.changesChannel(), changeMessage("grant", id, after.User))
				return nil
			})
			return err
		}, key)
		if !errors.Is(err, redis.TxFailedErr) {
			break
		}
	}
	if err != nil {
		if !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrConflict) && !errors.Is(err, ErrForbidden) &&
			!errors.Is(err, ErrInvalid) && !errors.Is(err, ErrUnavailable) && !errors.Is(err, errNoChange) {
			err = unavailable("update grant", err)
		}
		return nil, nil, err
	}
	return before, after, nil
}

// unavailable wraps a failure of Redis as ErrUnavailable.
func unavailable(what string, err error) error {
	return fmt.Errorf("%s: %w: %w", what, ErrUnavailable, err)
}

func (s *store) getGrant(ctx context.Context, id string) (*Grant, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := s.rdb.Get(ctx, s.key("grant", id)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("grant %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("load grant", err)
	}
	var g Grant
	if err := json.Unmarshal(b, &g); err != nil {
		return nil, fmt.Errorf("decode grant %s: %w", id, err)
	}
	return &g, nil
}

// getGrants loads the grants with the given IDs in one round trip, skipping
// those that no longer exist.
func (s *store) getGrants(ctx context.Context, ids []string) ([]*Grant, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	ctx, cancel := s.call(ctx)
	defer cancel()
	vals, err := s.rdb.MGet(ctx, s.grantKeys(ids)...).Result()
	if err != nil {
		return nil, unavailable("load grants", err)
	}
	return decodeGrants(ids, vals, nil)
}

func (s *store) grantKeys(ids []string) []string {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.key("grant", id)
	}
	return keys
}

// decodeGrants decodes the values MGET returned for ids, skipping those
// that do not exist and, if keep is not nil, those it does not hold.
func decodeGrants(ids []string, vals []any, keep map[string]bool) ([]*Grant, error) {
	out := make([]*Grant, 0, len(vals))
	for i, v := range vals {
		str, ok := v.(string)
		if !ok || keep != nil && !keep[ids[i]] {
			continue // expired or deleted since it was indexed; or not asked for
		}
		var g Grant
		if err := json.Unmarshal([]byte(str), &g); err != nil {
			return nil, fmt.Errorf("decode grant %s: %w", ids[i], err)
		}
		out = append(out, &g)
	}
	return out, nil
}

// liveGrants returns the user's PENDING and ACTIVE grants, as recorded. It
// reads the grants likely holds (IDs that were live, or changed, lately)
// in the round trip that reads the user's index, so that when they are all
// the index holds, that is the only round trip; it reads any others in a
// second one.
func (s *store) liveGrants(ctx context.Context, user string, likely []string) ([]*Grant, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	pipe := s.rdb.Pipeline()
	members := pipe.SMembers(ctx, s.key("user-grants", user))
	var prefetched *redis.SliceCmd
	if len(likely) > 0 {
		prefetched = pipe.MGet(ctx, s.grantKeys(likely)...)
	}
	pipe.Exec(ctx) // Its errors are the commands'.
	ids, err := members.Result()
	if err != nil {
		return nil, unavailable("load grant index", err)
	}
	if prefetched == nil {
		return s.getGrants(ctx, ids)
	}
	vals, err := prefetched.Result()
	if err != nil {
		return nil, unavailable("load grants", err)
	}
	live := make(map[string]bool, len(ids))
	for _, id := range ids {
		live[id] = true
	}
	out, err := decodeGrants(likely, vals, live)
	if err != nil {
		return nil, err
	}
	for _, id := range likely {
		delete(live, id)
	}
	if len(live) == 0 {
		return out, nil
	}
	var rest []string
	for _, id := range ids {
		if live[id] {
			rest = append(rest, id)
		}
	}
	more, err := s.getGrants(ctx, rest)
	if err != nil {
		return nil, err
	}
	return append(out, more...), nil
}

// recentGrants returns up to limit retained grants, newest first.
func (s *store) recentGrants(ctx context.Context, limit int) ([]*Grant, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	ids, err := s.rdb.ZRevRange(ctx, s.key("grants"), 0, int64(limit)-1).Result()
	if err != nil {
		return nil, unavailable("list grants", err)
	}
	return s.getGrants(ctx, ids)
}

// liveAll returns every PENDING and ACTIVE grant (those with a deadline).
func (s *store) liveAll(ctx context.Context) ([]*Grant, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	ids, err := s.rdb.ZRange(ctx, s.key("deadlines"), 0, -1).Result()
	if err != nil {
		return nil, unavailable("list live grants", err)
	}
	return s.getGrants(ctx, ids)
}

// dueGrants returns the IDs of grants whose deadline is at or before now.
func (s *store) dueGrants(ctx context.Context, now time.Time) ([]string, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	ids, err := s.rdb.ZRangeByScore(ctx, s.key("deadlines"), &redis.ZRangeBy{
		Min: "-inf", Max: strconv.FormatFloat(ms(now), 'f', 0, 64),
	}).Result()
	if err != nil {
		return nil, unavailable("find due grants", err)
	}
	return ids, nil
}

// forget drops grants created before cutoff from the listing index and
// removes index entries of grants that no longer exist.
func (s *store) forget(ctx context.Context, cutoff time.Time) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	return s.rdb.ZRemRangeByScore(ctx, s.key("grants"), "-inf", "("+strconv.FormatFloat(ms(cutoff), 'f', 0, 64)).Err()
}

func ms(t time.Time) float64 { return float64(t.UnixMilli()) }
