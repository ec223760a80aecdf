package jit

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// Defensive denial (Kudo's escalation policies): when the access policies
// change, a grant given or requested under an older version of its policy
// is judged against the version now in force, and one that version would
// no longer give is ended, not left to run with what it no longer allows.

// OnPolicyChange says what becomes of a grant whose access policy changed
// so that the grant would no longer be given.
type OnPolicyChange string

const (
	// RevokeGrants ends such grants (ACTIVE or PENDING) at once, with the
	// reason. The default.
	RevokeGrants OnPolicyChange = "revoke"
	// SuspendGrants holds them back (Grant.Suspended) until a later
	// policy set gives them again, or they end as they would have.
	SuspendGrants OnPolicyChange = "suspend"
	// KeepGrants leaves them to run to their end; they are only logged.
	KeepGrants OnPolicyChange = "keep"
)

// ReconcileGrants judges every grant in force or pending against the
// access policies now in force and, with RevokeGrants, revokes each that
// they would no longer give, as jitproxy, with the reason (its user sees
// it in grant show, notifications and the audit stream); with
// SuspendGrants it suspends them, with the reason, instead. Whatever the
// mode, a suspended grant they would give again resumes. It returns the
// grants it judged stale, with why, whatever the mode. A grant whose
// policy version is unchanged is not judged (and resumes if suspended).
func (s *Service) ReconcileGrants(ctx context.Context, mode OnPolicyChange) (map[string]string, error) {
	gs, err := s.store.liveAll(ctx)
	if err != nil {
		return nil, err
	}
	ps := s.policies()
	stale := map[string]string{}
	var errs []error
	for _, g := range gs {
		why := ps.Get(g.Policy).wouldNotGive(g)
		if why == "" {
			if g.Suspended != "" {
				if err := s.suspend(ctx, g.ID, ""); err != nil && !errors.Is(err, ErrConflict) {
					errs = append(errs, fmt.Errorf("resume grant %s: %w", g.ID, err))
				}
			}
			continue
		}
		stale[g.ID] = why
		s.log.Warn("a grant its access policy would no longer give", "grant", g.ID, "policy", g.Policy, "why", why, "mode", string(mode))
		switch {
		case mode == RevokeGrants:
			if _, err := s.end(ctx, g.ID, systemActor, StateRevoked, why); err != nil && !errors.Is(err, ErrConflict) {
				errs = append(errs, fmt.Errorf("revoke grant %s: %w", g.ID, err))
			}
		case mode == SuspendGrants && g.Suspended != why:
			if err := s.suspend(ctx, g.ID, why); err != nil && !errors.Is(err, ErrConflict) {
				errs = append(errs, fmt.Errorf("suspend grant %s: %w", g.ID, err))
			}
		}
	}
	return stale, errors.Join(errs...)
}

// suspend suspends the PENDING or ACTIVE grant id with why, or resumes it
// when why is "", and records it. A grant already ended is ErrConflict.
func (s *Service) suspend(ctx context.Context, id, why string) error {
	_, g, err := s.store.updateGrant(ctx, id, func(g *Grant) error {
		if g.State.Ended() {
			return fmt.Errorf("%w: grant %s is already %s", ErrConflict, id, g.State)
		}
		g.Suspended = why
		return nil
	})
	if err != nil {
		return err
	}
	s.cache.change("grant", g.ID, g.User)
	typ := audit.TypeGrantSuspended
	if why == "" {
		typ = audit.TypeGrantResumed
	}
	s.record(ctx, audit.Event{Type: typ, Actor: systemActor, Grant: g.auditView()})
	return nil
}

// wouldNotGive says why p, the version of g's access policy now in force
// (nil: none), would not give g; "" if it would, or if p is the version g
// was given under. Defensively, a permission of g that p does not keep
// exactly counts as narrowed, even if p changed it into a broader one.
func (p *Policy) wouldNotGive(g *Grant) string {
	switch {
	case p == nil:
		return fmt.Sprintf("access policy %q was removed", g.Policy)
	case p.Version == g.PolicyVersion:
		return ""
	}
	changed := fmt.Sprintf("access policy %q changed (version %s to %s): ", p.Name, g.PolicyVersion, p.Version)
	switch {
	case p.Target != g.Target:
		return changed + fmt.Sprintf("it now names target %q", p.Target)
	case !p.Subjects.Matches(g.User, g.UserGroups):
		return changed + fmt.Sprintf("%s is no longer among its subjects", g.User)
	case !p.allowsNamespace(g.Namespace):
		return changed + fmt.Sprintf("it no longer allows namespace %q", g.Namespace)
	case g.Duration > p.Duration.maxFor(g.User, g.UserGroups):
		return changed + fmt.Sprintf("the grant's duration %s exceeds its maximum %s for %s", g.Duration, p.Duration.maxFor(g.User, g.UserGroups), g.User)
	}
	for _, perm := range g.Permissions {
		if !slices.ContainsFunc(p.Permissions, func(q access.Permission) bool { return reflect.DeepEqual(q, perm) }) {
			return changed + "it no longer gives every permission the grant has"
		}
	}
	return ""
}
