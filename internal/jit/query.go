package jit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
)

// canSee reports whether by may see (and revoke) g: its user, an agent
// session it applies to, its approvers and admins.
func (s *Service) canSee(by Principal, g *Grant) bool {
	if by.IsAgent() {
		return g.User == by.Name && (g.Session == "" || g.Session == by.Session)
	}
	return g.User == by.Name || g.Approvers.Matches(by.Name, by.Groups) || s.isAdmin(by)
}

// Get returns the grant with the given ID, its state as of now.
func (s *Service) Get(ctx context.Context, by Principal, id string) (*Grant, error) {
	g, err := s.store.getGrant(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.canSee(by, g) {
		return nil, fmt.Errorf("grant %s: %w", id, ErrNotFound)
	}
	g.State = g.StateAt(s.now())
	return g, nil
}

// ListFilter selects grants. Zero fields select everything.
type ListFilter struct {
	State State
	User  string
	// Limit caps the grants looked at, newest first; default 500.
	Limit int
}

// List returns the retained grants by may see, newest first, states as of now.
func (s *Service) List(ctx context.Context, by Principal, f ListFilter) ([]*Grant, error) {
	if f.Limit <= 0 {
		f.Limit = 500
	}
	all, err := s.store.recentGrants(ctx, f.Limit)
	if err != nil {
		return nil, err
	}
	now := s.now()
	out := make([]*Grant, 0, len(all))
	for _, g := range all {
		g.State = g.StateAt(now)
		if s.canSee(by, g) && (f.State == "" || g.State == f.State) && (f.User == "" || g.User == f.User) {
			out = append(out, g)
		}
	}
	return out, nil
}

// CountLive returns the number of live grants by state as of now, read
// from the store: PENDING and ACTIVE, and EXPIRED for those past their
// expiry that the expiry loop has not ended yet. Every replica sees the
// same numbers. A store failure is an error wrapping ErrUnavailable.
func (s *Service) CountLive(ctx context.Context) (map[State]int, error) {
	gs, err := s.store.liveAll(ctx)
	if err != nil {
		return nil, err
	}
	now := s.now()
	n := map[State]int{}
	for _, g := range gs {
		n[g.StateAt(now)]++
	}
	return n, nil
}

// Active is a session and the grants in force for it, as ActiveGrants
// returns them. It is immutable, and ActiveGrants returns the same *Active
// for as long as the grants in force stay the same (until one expires or
// anything changes), so that consumers may key what they derive from the
// grants, such as the policies' view of them, on the pointer. Neither it
// nor the session and grants it points to may be modified.
type Active struct {
	Session *Session
	Grants  []*Grant
	// Held says why grants that would otherwise be in force are not:
	// "grant g-... (policy) is suspended: ...". Nil when none are.
	Held  []string
	from  time.Time // when Grants was computed
	until time.Time // when the first of Grants expires
}

// ActiveGrants returns the session and the grants in force for it at now:
// ACTIVE, not past expiry, held by its user and not limited to another
// session. It serves from the in-process cache when it can. A session that
// is unknown or expired is ErrUnauthenticated. A session an admin's lock
// holds (its own, its user's or its agent's) is a *LockedError
// (ErrLocked); a grant under a locked access policy is not in force.
// While such a lock holds, each call returns a new *Active.
func (s *Service) ActiveGrants(ctx context.Context, sessionID string) (*Active, error) {
	e, ticket, ok := s.cache.get(sessionID)
	if !ok || !e.loaded {
		// A cached session whose user's grants changed needs only them,
		// and likely those it had and those changed since.
		var ss *storedSession
		var likely []string
		if ok {
			ss, likely = e.session, e.likely
		} else {
			var err error
			if ss, err = s.store.getSession(ctx, sessionID); err != nil {
				if errors.Is(err, ErrNotFound) {
					return nil, fmt.Errorf("%w: unknown or expired session", ErrUnauthenticated)
				}
				return nil, err
			}
		}
		live, err := s.store.liveGrants(ctx, ss.User, likely)
		if err != nil {
			return nil, err
		}
		e = &cacheEntry{session: ss, grants: live, loaded: true}
		s.cache.put(sessionID, ticket, e)
	}
	now := s.now()
	if !now.Before(e.session.ExpiresAt) {
		return nil, fmt.Errorf("%w: unknown or expired session", ErrUnauthenticated)
	}
	if a := e.active.Load(); a != nil && !now.Before(a.from) && now.Before(a.until) {
		return s.applyLocks(ctx, a, now)
	}
	a := &Active{Session: &e.session.Session, from: now, until: e.session.ExpiresAt}
	for _, g := range e.grants {
		if g.StateAt(now) == StateActive && g.appliesTo(&e.session.Session) {
			if g.Suspended != "" {
				a.Held = append(a.Held, fmt.Sprintf("grant %s (%s) is suspended: %s", g.ID, g.Policy, g.Suspended))
				continue
			}
			a.Grants = append(a.Grants, g)
			if g.ExpiresAt.Before(a.until) {
				a.until = g.ExpiresAt
			}
		}
	}
	e.active.Store(a)
	return s.applyLocks(ctx, a, now)
}

// Requestable returns the policies in force for target that the caller's
// user may request, sorted by name.
func (s *Service) Requestable(c access.Caller, target string) []*Policy {
	return s.policies().Requestable(c, target)
}

// Requestable returns the policies of s for target that the caller's user
// may request, sorted by name.
func (s *Policies) Requestable(c access.Caller, target string) []*Policy {
	var out []*Policy
	for _, p := range s.All() {
		if p.Target == target && p.Subjects.Matches(c.User, c.Groups) {
			out = append(out, p)
		}
	}
	return out
}

// RequestableNamespace returns the namespace a grant under p must name to
// cover a request in ns, and whether p can cover it at all: never for a
// namespace a grant could not name (not a DNS-1123 label).
func (p *Policy) RequestableNamespace(ns string) (string, bool) {
	if p.ClusterWide {
		return "", true
	}
	return ns, checkNamespace(ns) == nil && p.allowsNamespace(ns)
}
