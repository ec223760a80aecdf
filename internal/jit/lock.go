package jit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Locks are the kill switch: an admin locks a user, an agent, a session or
// an access policy, and every request that matches is denied on every
// replica at once, and the streams open under it end. A lock holds until
// it is removed or its TTL passes.
//
// Locks live in Redis (the hash "locks", lock ID → Lock JSON); a change is
// announced on the changes channel ("lock:ID"). Each replica keeps a view
// of the locks, read again on every announcement and whenever its
// subscription is (re)established. While the view cannot be known to be
// fresh (the subscription is down, or the read after an announcement
// failed), every request reads the locks from Redis itself, and is refused
// if it cannot: a replica never guesses.

// ErrLocked: an admin's lock denies the request (LockedError says which).
var ErrLocked = errors.New("locked")

// Lock is an admin's lock. Exactly one of User, Agent, Session and Policy
// is set.
type Lock struct {
	ID      string `json:"id"`
	User    string `json:"user,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Session string `json:"session,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Reason  string `json:"reason"`
	// CreatedBy names the admin who created it.
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	// ExpiresAt is when the lock lifts by itself; zero: when removed.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// LockRequest asks for a lock: exactly one of User, Agent, Session and
// Policy; TTL 0 holds until removed.
type LockRequest struct {
	User, Agent, Session, Policy string
	TTL                          time.Duration
	Reason                       string
}

// LockedError is the lock that denies a request; it wraps ErrLocked and
// its message is safe to show the agent.
type LockedError struct{ Lock *Lock }

func (e *LockedError) Error() string {
	return fmt.Sprintf("%s is locked by an administrator (lock %s): %s", e.Lock.auditView().Target(), e.Lock.ID, e.Lock.Reason)
}

func (e *LockedError) Unwrap() error { return ErrLocked }

// inForceAt reports whether l holds at now.
func (l *Lock) inForceAt(now time.Time) bool { return l.ExpiresAt.IsZero() || now.Before(l.ExpiresAt) }

// locksSession reports whether l locks everything session s does.
func (l *Lock) locksSession(s *Session) bool {
	return l.User != "" && l.User == s.User || l.Agent != "" && l.Agent == s.Agent || l.Session != "" && l.Session == s.ID
}

// locksGrant reports whether l takes grant g out of force.
func (l *Lock) locksGrant(g *Grant) bool {
	return l.Policy != "" && l.Policy == g.Policy || l.User != "" && l.User == g.User
}

func (l *Lock) auditView() *audit.Lock {
	return &audit.Lock{ID: l.ID, User: l.User, Agent: l.Agent, Session: l.Session, Policy: l.Policy, Reason: l.Reason, ExpiresAt: l.ExpiresAt}
}

// lockView is a replica's view of the locks. fresh: it was read after
// the last announcement; it is used only while the subscription is up too
// (activeCache.subscribed), and read again before the cache is used after
// the subscription comes back.
type lockView struct {
	locks []*Lock
	fresh bool
}

// staleLocks is the view before the first read: not fresh.
var staleLocks = &lockView{}

// locksFor returns the locks in force at now, from the view if it is fresh,
// else read from Redis.
func (s *Service) locksFor(ctx context.Context, now time.Time) ([]*Lock, error) {
	v := s.locks.Load()
	locks := v.locks
	if !v.fresh || !s.cache.subscribed.Load() {
		var err error
		if locks, err = s.store.getLocks(ctx); err != nil {
			return nil, err
		}
	}
	if len(locks) == 0 {
		return nil, nil
	}
	var in []*Lock
	for _, l := range locks {
		if l.inForceAt(now) {
			in = append(in, l)
		}
	}
	return in, nil
}

// refreshLocks reads the locks into the view. The view is fresh only if
// the read succeeded; the subscription must be up for it to stay so.
func (s *Service) refreshLocks(ctx context.Context) {
	locks, err := s.store.getLocks(ctx)
	if err != nil {
		s.locks.Store(staleLocks)
		s.log.Warn("read the locks; every request reads them until the next change", "err", err)
		return
	}
	s.locks.Store(&lockView{locks: locks, fresh: true})
}

// applyLocks returns a with the locks in force applied: a LockedError if
// one locks its session, its user or its agent; else a without the grants
// a lock takes out of force (the same *Active when none does).
func (s *Service) applyLocks(ctx context.Context, a *Active, now time.Time) (*Active, error) {
	locks, err := s.locksFor(ctx, now)
	if err != nil || len(locks) == 0 {
		return a, err
	}
	for _, l := range locks {
		if l.locksSession(a.Session) {
			return nil, &LockedError{Lock: l}
		}
	}
	locked := func(g *Grant) bool { return slices.ContainsFunc(locks, func(l *Lock) bool { return l.locksGrant(g) }) }
	if !slices.ContainsFunc(a.Grants, locked) {
		return a, nil
	}
	out := &Active{Session: a.Session, Held: a.Held, from: a.from, until: a.until}
	for _, g := range a.Grants {
		if !locked(g) {
			out.Grants = append(out.Grants, g)
		}
	}
	return out, nil
}

// checkRequestLocks refuses a grant request that a lock holds: on the
// requester (its user, or its agent and session), on the session the grant
// would be limited to, or on the access policy. A grant it would create
// could not be used anyway.
func (s *Service) checkRequestLocks(ctx context.Context, by Principal, policy, session string) error {
	locks, err := s.locksFor(ctx, s.now())
	if err != nil {
		return err
	}
	for _, l := range locks {
		switch {
		case l.User != "" && l.User == by.Name,
			l.Agent != "" && l.Agent == by.Agent,
			l.Session != "" && (l.Session == by.Session || l.Session == session),
			l.Policy != "" && l.Policy == policy:
			return &LockedError{Lock: l}
		}
	}
	return nil
}

// CreateLock locks what req names, for admins (never agents).
func (s *Service) CreateLock(ctx context.Context, by Principal, req LockRequest) (*Lock, error) {
	if !s.isAdmin(by) {
		return nil, fmt.Errorf("%w: only admins lock", ErrForbidden)
	}
	set := 0
	for _, v := range []string{req.User, req.Agent, req.Session, req.Policy} {
		if v != "" {
			set++
		}
	}
	if set != 1 {
		return nil, fmt.Errorf("%w: a lock names exactly one of a user, an agent, a session and an access policy", ErrInvalid)
	}
	if req.TTL < 0 {
		return nil, fmt.Errorf("%w: the TTL must not be negative", ErrInvalid)
	}
	if req.Reason == "" {
		return nil, fmt.Errorf("%w: a lock needs a reason", ErrInvalid)
	}
	if err := invalid(checkText("reason", req.Reason)); err != nil {
		return nil, err
	}
	for _, v := range []string{req.User, req.Agent, req.Session, req.Policy} {
		if err := invalid(checkText("lock target", v)); err != nil {
			return nil, err
		}
	}
	now := s.now()
	l := &Lock{
		ID: newID("l-"), User: req.User, Agent: req.Agent, Session: req.Session, Policy: req.Policy,
		Reason: req.Reason, CreatedBy: by.Name, CreatedAt: now,
	}
	if req.TTL > 0 {
		l.ExpiresAt = now.Add(req.TTL)
	}
	if err := s.store.putLock(ctx, l); err != nil {
		return nil, err
	}
	// This replica's view is read again now, not when the announcement
	// comes back: the answer means the lock holds here.
	s.refreshLocks(ctx)
	s.watches.recheckAll()
	s.record(ctx, audit.Event{Type: audit.TypeLockCreated, Actor: by.actor(), Lock: l.auditView()})
	return l, nil
}

// ListLocks returns the locks in force, oldest first, for admins.
func (s *Service) ListLocks(ctx context.Context, by Principal) ([]*Lock, error) {
	if !s.isAdmin(by) {
		return nil, fmt.Errorf("%w: only admins see locks", ErrForbidden)
	}
	locks, err := s.store.getLocks(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := []*Lock{}
	for _, l := range locks {
		if l.inForceAt(now) {
			out = append(out, l)
		}
	}
	slices.SortFunc(out, func(a, b *Lock) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// RemoveLock lifts the lock id, for admins.
func (s *Service) RemoveLock(ctx context.Context, by Principal, id, reason string) (*Lock, error) {
	if !s.isAdmin(by) {
		return nil, fmt.Errorf("%w: only admins remove locks", ErrForbidden)
	}
	if err := invalid(checkText("reason", reason)); err != nil {
		return nil, err
	}
	l, err := s.store.deleteLock(ctx, id)
	if err != nil {
		return nil, err
	}
	s.refreshLocks(ctx)
	view := l.auditView()
	if reason != "" {
		view.Reason = reason
	}
	s.record(ctx, audit.Event{Type: audit.TypeLockRemoved, Actor: by.actor(), Lock: view})
	return l, nil
}

// reapLocks removes the locks whose TTL passed, announcing and recording
// each once, whichever replica removes it.
func (s *Service) reapLocks(ctx context.Context) error {
	locks, err := s.store.getLocks(ctx)
	if err != nil {
		return err
	}
	now := s.now()
	for _, l := range locks {
		if l.inForceAt(now) {
			continue
		}
		if _, err := s.store.deleteLock(ctx, l.ID); errors.Is(err, ErrNotFound) {
			continue // another replica removed it
		} else if err != nil {
			return err
		}
		view := l.auditView()
		view.Reason = "expired"
		s.record(ctx, audit.Event{Type: audit.TypeLockRemoved, Actor: systemActor, Lock: view})
	}
	return nil
}

// lockMessage is the changes channel's announcement of a change to lock id.
func lockMessage(id string) string { return "lock:" + id }

// putLock stores l and announces it.
func (s *store) putLock(ctx context.Context, l *Lock) error {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := json.Marshal(l)
	if err != nil {
		return err
	}
	pipe := s.rdb.TxPipeline()
	pipe.HSet(ctx, s.key("locks"), l.ID, b)
	pipe.Publish(ctx, s.changesChannel(), lockMessage(l.ID))
	if _, err := pipe.Exec(ctx); err != nil {
		return unavailable("store lock", err)
	}
	return nil
}

// deleteLock deletes the lock id and announces it; it returns the lock.
func (s *store) deleteLock(ctx context.Context, id string) (*Lock, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	b, err := s.rdb.HGet(ctx, s.key("locks"), id).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("lock %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, unavailable("load lock", err)
	}
	var l Lock
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("decode lock %s: %w", id, err)
	}
	pipe := s.rdb.TxPipeline()
	del := pipe.HDel(ctx, s.key("locks"), id)
	pipe.Publish(ctx, s.changesChannel(), lockMessage(id))
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, unavailable("delete lock", err)
	}
	if del.Val() == 0 {
		return nil, fmt.Errorf("lock %s: %w", id, ErrNotFound)
	}
	return &l, nil
}

// getLocks reads every stored lock, in force or not.
func (s *store) getLocks(ctx context.Context) ([]*Lock, error) {
	ctx, cancel := s.call(ctx)
	defer cancel()
	m, err := s.rdb.HGetAll(ctx, s.key("locks")).Result()
	if err != nil {
		return nil, unavailable("load locks", err)
	}
	locks := make([]*Lock, 0, len(m))
	for id, b := range m {
		var l Lock
		if err := json.Unmarshal([]byte(b), &l); err != nil {
			return nil, fmt.Errorf("decode lock %s: %w", id, err)
		}
		locks = append(locks, &l)
	}
	return locks, nil
}

// locksExpired reports whether the view holds a lock past its TTL, or
// cannot tell (it is not fresh): then reapLocks has work.
func (s *Service) locksExpired(now time.Time) bool {
	v := s.locks.Load()
	return !v.fresh || slices.ContainsFunc(v.locks, func(l *Lock) bool { return !l.inForceAt(now) })
}

// lockChanged follows an announced change of a lock (or a new
// subscription, after which announcements may have been missed): the view
// is read again, and every open watch checked, so that streams under a new
// lock end.
func (s *Service) lockChanged(ctx context.Context) {
	s.refreshLocks(ctx)
	s.watches.recheckAll()
}
