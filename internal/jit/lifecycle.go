package jit

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// GrantRequest asks for a grant under an access policy.
type GrantRequest struct {
	Policy string
	// Namespace is required unless the policy is cluster-wide.
	Namespace string
	// Duration defaults to the policy's default and may not exceed its max.
	Duration time.Duration
	// Reason is required: it is what approvers and auditors read.
	Reason string
	// Session optionally limits a person's grant to one of their agent
	// sessions. An agent's grant is always limited to its own session.
	Session string
	// DryRun checks the request and returns the grant it would create,
	// with no ID, storing, announcing and recording nothing.
	DryRun bool
	// Learn requests the grant in learning mode: the policy's permissions
	// are the boundary, and every distinct action the grant allows is
	// recorded to a profile (Grant.Learning).
	Learn bool
}

// RequestGrant creates a grant. It is ACTIVE at once when the policy needs
// no approval, PENDING otherwise. A namespace that is not a DNS-1123 label,
// or a reason that is not printable text of at most MaxTextLength bytes, is
// ErrInvalid. With req.DryRun it only says what it would do: the same
// errors, or the grant it would create (without an ID).
func (s *Service) RequestGrant(ctx context.Context, by Principal, req GrantRequest) (*Grant, error) {
	p := s.policies().Get(req.Policy)
	if p == nil {
		return nil, fmt.Errorf("access policy %q: %w", req.Policy, ErrNotFound)
	}
	if !p.Subjects.Matches(by.Name, by.Groups) {
		return nil, fmt.Errorf("%w: %s may not request access policy %q", ErrForbidden, by.Name, p.Name)
	}
	if !slices.Contains(s.cfg.Targets, p.Target) {
		return nil, fmt.Errorf("%w: access policy %q names target %q, which this jitproxy does not serve", ErrInvalid, p.Name, p.Target)
	}
	if err := s.checkRequestLocks(ctx, by, p.Name, req.Session); err != nil {
		return nil, err
	}
	// The time window; the source network and the auth method are the
	// agent session's, checked at each use.
	if why := (&Conditions{Windows: p.conditions().Windows}).Check(s.now(), "", ""); why != "" {
		return nil, fmt.Errorf("%w: access policy %q may not be requested now: its grants are %s", ErrForbidden, p.Name, why)
	}
	switch {
	case p.ClusterWide && req.Namespace != "":
		return nil, fmt.Errorf("%w: access policy %q is cluster-wide; request it without a namespace", ErrInvalid, p.Name)
	case !p.ClusterWide && req.Namespace == "":
		return nil, fmt.Errorf("%w: access policy %q is namespaced; request it with a namespace", ErrInvalid, p.Name)
	case !p.ClusterWide:
		if err := invalid(checkNamespace(req.Namespace)); err != nil {
			return nil, err
		}
	}
	if !p.allowsNamespace(req.Namespace) {
		return nil, fmt.Errorf("%w: access policy %q allows namespaces %v, not %q", ErrInvalid, p.Name, p.Namespaces, req.Namespace)
	}
	d := req.Duration
	if d == 0 {
		d = p.Duration.defaultFor(by.Name, by.Groups)
	}
	if d < 0 {
		return nil, fmt.Errorf("%w: duration must be positive", ErrInvalid)
	}
	if maxD := p.Duration.maxFor(by.Name, by.Groups); d > maxD {
		return nil, fmt.Errorf("%w: duration %s exceeds the maximum %s of access policy %q for %s", ErrInvalid, d, maxD, p.Name, by.Name)
	}
	if req.Reason == "" {
		return nil, fmt.Errorf("%w: a reason is required", ErrInvalid)
	}
	if err := invalid(checkText("reason", req.Reason)); err != nil {
		return nil, err
	}
	session := req.Session
	if by.IsAgent() {
		if session != "" && session != by.Session {
			return nil, fmt.Errorf("%w: an agent can request grants only for its own session", ErrForbidden)
		}
		session = by.Session
	} else if session != "" {
		ss, err := s.store.getSession(ctx, session)
		if err != nil || ss.User != by.Name {
			return nil, fmt.Errorf("%w: %s has no session %q", ErrInvalid, by.Name, session)
		}
	}
	now := s.now()
	g := &Grant{
		ID: newID("g-"), Policy: p.Name, PolicyVersion: p.Version,
		Target: p.Target, Namespace: req.Namespace, Permissions: p.Permissions, Credential: p.Credential, Conditions: p.Conditions,
		User: by.Name, Session: session, UserGroups: by.Groups,
		RequestedBy: Requester{Name: by.Name, Session: by.Session, Agent: by.Agent},
		Reason:      req.Reason, Duration: d,
		State: StatePending, RequiredApprovals: p.Approval.Required, Approvers: p.Approval.Approvers, ApprovalSteps: p.Approval.Steps,
		CreatedAt: now, PendingUntil: now.Add(p.Approval.Timeout), Learning: req.Learn,
	}
	if p.Approval.Required == 0 {
		g.activate(now)
	} else if rule := s.autoApprove(ctx, by, g, now); rule != "" {
		g.AutoApprovedBy = rule
		g.Approvals = append(g.Approvals, Decision{By: "rule:" + rule, At: now, Comment: "auto-approved"})
		g.activate(now)
	}
	if req.DryRun {
		g.ID = ""
		return g, nil
	}
	if err := s.store.createGrant(ctx, g); err != nil {
		return nil, err
	}
	s.cache.change("grant", g.ID, g.User)
	requested := *g
	requested.State, requested.Approvals = StatePending, nil
	s.record(ctx, audit.Event{Type: audit.TypeGrantRequested, Actor: by.actor(), Grant: requested.auditView()})
	if g.AutoApprovedBy != "" {
		approved := *g
		approved.State = StatePending
		// The rule is who approved, as a person is in Approve.
		s.record(ctx, audit.Event{Type: audit.TypeGrantApproved, Actor: &audit.Actor{Name: "rule:" + g.AutoApprovedBy}, Grant: approved.auditView()})
	}
	if g.State == StateActive {
		s.record(ctx, audit.Event{Type: audit.TypeGrantActivated, Actor: systemActor, Grant: g.auditView()})
	}
	return g, nil
}

// activate makes g ACTIVE from now for its duration, or until its
// windows close if its conditions end it there.
func (g *Grant) activate(now time.Time) {
	g.State = StateActive
	g.ActivatedAt = now
	g.ExpiresAt = now.Add(g.Duration)
	if end, ok := g.Conditions.windowsClose(now, g.ExpiresAt); ok {
		g.ExpiresAt = end
	}
}

// endsEarly reports whether an ACTIVE g expires before its duration is
// over: its windows close first.
func (g *Grant) endsEarly() bool {
	return !g.ActivatedAt.IsZero() && g.ExpiresAt.Before(g.ActivatedAt.Add(g.Duration))
}

// checkApprover returns an error unless by may approve or deny g.
func (s *Service) checkApprover(by Principal, g *Grant) error {
	switch {
	case by.IsAgent():
		return fmt.Errorf("%w: agents cannot approve or deny grants", ErrForbidden)
	case by.Name == g.User || by.Name == g.RequestedBy.Name:
		return fmt.Errorf("%w: %s cannot approve or deny their own request", ErrForbidden, by.Name)
	case !g.Approvers.Matches(by.Name, by.Groups):
		return fmt.Errorf("%w: %s is not an approver of access policy %q", ErrForbidden, by.Name, g.Policy)
	}
	return nil
}

// Approve records by's approval of a PENDING grant; the grant becomes ACTIVE
// once it has the approvals its policy requires. The comment, like the
// reason of Deny and Revoke, is printable text of at most MaxTextLength
// bytes, or ErrInvalid.
func (s *Service) Approve(ctx context.Context, by Principal, id, comment string) (*Grant, error) {
	if err := invalid(checkText("comment", comment)); err != nil {
		return nil, err
	}
	now := s.now()
	_, g, err := s.store.updateGrant(ctx, id, func(g *Grant) error {
		if err := s.checkApprover(by, g); err != nil {
			return err
		}
		if st := g.StateAt(now); st != StatePending {
			return fmt.Errorf("%w: grant %s is %s, not PENDING", ErrConflict, id, st)
		}
		if g.Suspended != "" {
			return fmt.Errorf("%w: grant %s is suspended: %s", ErrConflict, id, g.Suspended)
		}
		if slices.ContainsFunc(g.Approvals, func(d Decision) bool { return d.By == by.Name }) {
			return fmt.Errorf("%w: %s has already approved grant %s", ErrConflict, by.Name, id)
		}
		d := Decision{By: by.Name, At: now, Comment: comment}
		if len(g.ApprovalSteps) > 0 {
			if d.Step = g.openStep(by); d.Step == 0 {
				return fmt.Errorf("%w: grant %s needs no more approvals from %s's groups; it is waiting for %s", ErrConflict, id, by.Name, g.Waiting())
			}
		}
		g.Approvals = append(g.Approvals, d)
		if g.approved() {
			g.activate(now)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.change("grant", g.ID, g.User)
	s.record(ctx, audit.Event{Type: audit.TypeGrantApproved, Actor: by.actor(), Grant: g.auditView()})
	if g.State == StateActive {
		s.record(ctx, audit.Event{Type: audit.TypeGrantActivated, Actor: systemActor, Grant: g.auditView()})
	}
	return g, nil
}

// Deny ends a PENDING grant as DENIED.
func (s *Service) Deny(ctx context.Context, by Principal, id, reason string) (*Grant, error) {
	if err := invalid(checkText("reason", reason)); err != nil {
		return nil, err
	}
	now := s.now()
	_, g, err := s.store.updateGrant(ctx, id, func(g *Grant) error {
		if err := s.checkApprover(by, g); err != nil {
			return err
		}
		if st := g.StateAt(now); st != StatePending {
			return fmt.Errorf("%w: grant %s is %s, not PENDING", ErrConflict, id, st)
		}
		g.State, g.EndedAt, g.EndedBy, g.EndReason = StateDenied, now, by.Name, reason
		g.Denial = &Decision{By: by.Name, At: now, Comment: reason}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.change("grant", g.ID, g.User)
	s.record(ctx, audit.Event{Type: audit.TypeGrantDenied, Actor: by.actor(), Grant: g.auditView()})
	return g, nil
}

// Revoke ends a PENDING or ACTIVE grant as REVOKED. The grant's user, its
// approvers and admins may revoke it.
func (s *Service) Revoke(ctx context.Context, by Principal, id, reason string) (*Grant, error) {
	if err := invalid(checkText("reason", reason)); err != nil {
		return nil, err
	}
	g, err := s.store.getGrant(ctx, id)
	if err != nil {
		return nil, err
	}
	if !s.canSee(by, g) {
		return nil, fmt.Errorf("grant %s: %w", id, ErrNotFound)
	}
	return s.end(ctx, id, by.actor(), StateRevoked, reason)
}

// end moves a PENDING or ACTIVE grant to the final state to, records it and,
// if it was ACTIVE, calls OnGrantEnd. A grant already ended is ErrConflict.
func (s *Service) end(ctx context.Context, id string, by *audit.Actor, to State, reason string) (*Grant, error) {
	now := s.now()
	before, g, err := s.store.updateGrant(ctx, id, func(g *Grant) error {
		if g.State.Ended() {
			return fmt.Errorf("%w: grant %s is already %s", ErrConflict, id, g.State)
		}
		if to == StateExpired && g.StateAt(now) != StateExpired {
			return fmt.Errorf("%w: grant %s is not due to expire", ErrConflict, id)
		}
		if to == StateRevoked && g.StateAt(now) == StateExpired {
			to, by, reason = StateExpired, systemActor, "expired"
		}
		if to == StateExpired && g.State == StateActive && g.endsEarly() {
			reason = "expired early: its window closed (usable only " + g.Conditions.windowsString() + ")"
		}
		g.State, g.EndedAt, g.EndedBy, g.EndReason = to, now, by.Name, reason
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.cache.change("grant", g.ID, g.User)
	typ := audit.TypeGrantRevoked
	if g.State == StateExpired {
		typ = audit.TypeGrantExpired
	}
	s.record(ctx, audit.Event{Type: typ, Actor: by, Grant: g.auditView()})
	if before.State == StateActive && s.cfg.OnGrantEnd != nil {
		s.cfg.OnGrantEnd(ctx, g)
	}
	return g, nil
}

// Reap ends every grant whose deadline has passed: ACTIVE grants past their
// expiry and PENDING requests past their approval timeout become EXPIRED.
// It also forgets the cached sessions that have expired.
// Run calls it every ReapInterval; replicas may race, and each grant is
// ended exactly once.
func (s *Service) Reap(ctx context.Context) {
	now := s.now()
	s.cache.sweep(now)
	ids, err := s.store.dueGrants(ctx, now)
	if err != nil {
		// Once per outage: Run calls Reap every ReapInterval.
		if !s.reapFailing.Swap(true) {
			s.log.Error("find expired grants; retrying every reap interval", "err", err)
		}
		return
	}
	if s.reapFailing.Swap(false) {
		s.log.Info("finding expired grants works again")
	}
	for _, id := range ids {
		_, err := s.end(ctx, id, systemActor, StateExpired, "expired")
		if err != nil && !errors.Is(err, ErrConflict) {
			s.log.Error("expire grant", "grant", id, "err", err)
		}
	}
	if err := s.store.forget(ctx, now.Add(-2*s.cfg.Retention)); err != nil {
		s.log.Error("trim grant index", "err", err)
	}
	if s.locksExpired(now) {
		if err := s.reapLocks(ctx); err != nil {
			s.log.Error("remove expired locks", "err", err)
		}
	}
}
