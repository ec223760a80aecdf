package jit

import (
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// State is a grant's state.
type State string

// Grant states.
const (
	StatePending State = "PENDING"
	StateActive  State = "ACTIVE"
	StateDenied  State = "DENIED"
	StateExpired State = "EXPIRED"
	StateRevoked State = "REVOKED"
)

// Ended reports whether s is final.
func (s State) Ended() bool { return s == StateDenied || s == StateExpired || s == StateRevoked }

// Grant is a request for, and once ACTIVE the holding of, the access an
// access policy describes. Scope, approvers and credential are copied from
// the policy when the grant is requested, so a later policy change never
// widens or narrows a grant already given.
type Grant struct {
	ID            string `json:"id"`
	Policy        string `json:"policy"`
	PolicyVersion string `json:"policy_version"`
	Target        string `json:"target"`
	// Namespace is "" for a cluster-wide grant.
	Namespace   string              `json:"namespace,omitempty"`
	Permissions []access.Permission `json:"permissions"`
	Credential  CredentialSpec      `json:"credential"`
	// Conditions are the policy version's, checked on every use.
	Conditions *Conditions `json:"conditions,omitempty"`

	// User holds the grant. Session, when set, limits it to one agent session.
	User    string `json:"user"`
	Session string `json:"session,omitempty"`
	// UserGroups are the user's groups when the grant was requested, by
	// which a changed policy's subjects are judged (ReconcileGrants).
	UserGroups []string `json:"user_groups,omitempty"`
	// RequestedBy is the principal that asked: the user, or an agent session.
	RequestedBy Requester     `json:"requested_by"`
	Reason      string        `json:"reason"`
	Duration    time.Duration `json:"duration_ns"`

	State             State      `json:"state"`
	RequiredApprovals int        `json:"required_approvals"`
	Approvers         Subjects   `json:"approvers"`
	Approvals         []Decision `json:"approvals,omitempty"`
	// ApprovalSteps, if any, are the approvals the request needs, step by
	// step (Approvers is then all their approvers).
	ApprovalSteps []ApprovalStep `json:"approval_steps,omitempty"`
	// AutoApprovedBy names the auto-approval rule that approved the
	// request in place of people (its approval is "rule:NAME").
	AutoApprovedBy string    `json:"auto_approved_by,omitempty"`
	Denial         *Decision `json:"denial,omitempty"`

	CreatedAt time.Time `json:"created_at"`
	// PendingUntil is when an unapproved request expires.
	PendingUntil time.Time `json:"pending_until,omitzero"`
	ActivatedAt  time.Time `json:"activated_at,omitzero"`
	// ExpiresAt is when an ACTIVE grant ends.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	EndedAt   time.Time `json:"ended_at,omitzero"`
	// EndedBy and EndReason say who ended the grant and why.
	EndedBy   string `json:"ended_by,omitempty"`
	EndReason string `json:"end_reason,omitempty"`
	// Suspended, if set, says why the grant is held back: its access
	// policy changed so that it would no longer be given, and
	// policies.on_change is suspend. A suspended grant is in force for
	// nothing and cannot be approved; it resumes if a later policy set
	// gives it again, and ends when it would have.
	Suspended string `json:"suspended,omitempty"`
	// Learning marks a grant requested in learning mode: it allows what
	// its policy allows, and every distinct action of the requests it
	// allows is recorded to a profile keyed by its ID.
	Learning bool `json:"learning,omitempty"`
}

// Requester is who asked for a grant.
type Requester struct {
	Name    string `json:"name"`
	Session string `json:"session,omitempty"`
	Agent   string `json:"agent,omitempty"`
}

// Decision is one approval or denial.
type Decision struct {
	By      string    `json:"by"`
	At      time.Time `json:"at"`
	Comment string    `json:"comment,omitempty"`
	// Step is the approval step (from 1) an approval counts for; 0
	// without steps.
	Step int `json:"step,omitempty"`
}

// openStep returns the step (from 1) by's approval would count for: the
// first whose approvers include by and that still needs approvals; 0 if
// none.
func (g *Grant) openStep(by Principal) int {
	for i, st := range g.ApprovalSteps {
		if st.Approvers.Matches(by.Name, by.Groups) && g.stepApprovals(i+1) < st.Required {
			return i + 1
		}
	}
	return 0
}

// stepApprovals counts the approvals of step n (from 1).
func (g *Grant) stepApprovals(n int) int {
	c := 0
	for _, d := range g.Approvals {
		if d.Step == n {
			c++
		}
	}
	return c
}

// approved reports whether g has every approval it needs.
func (g *Grant) approved() bool {
	if len(g.ApprovalSteps) == 0 {
		return len(g.Approvals) >= g.RequiredApprovals
	}
	for i, st := range g.ApprovalSteps {
		if g.stepApprovals(i+1) < st.Required {
			return false
		}
	}
	return true
}

// StateAt returns the grant's state at now: a PENDING or ACTIVE grant whose
// deadline has passed is EXPIRED, whether or not that was yet recorded.
func (g *Grant) StateAt(now time.Time) State {
	switch {
	case g.State == StateActive && !now.Before(g.ExpiresAt):
		return StateExpired
	case g.State == StatePending && !now.Before(g.PendingUntil):
		return StateExpired
	}
	return g.State
}

// deadline is when the grant's current state ends by itself.
func (g *Grant) deadline() time.Time {
	if g.State == StatePending {
		return g.PendingUntil
	}
	return g.ExpiresAt
}

// appliesTo reports whether the grant covers requests of the session s.
func (g *Grant) appliesTo(s *Session) bool {
	return g.User == s.User && (g.Session == "" || g.Session == s.ID)
}

func (g *Grant) auditView() *audit.Grant {
	return &audit.Grant{
		ID: g.ID, Policy: g.Policy, Version: g.PolicyVersion, State: string(g.State),
		User: g.User, Session: g.Session, Target: g.Target, Namespace: g.Namespace,
		Reason: g.Reason, ExpiresAt: g.ExpiresAt, EndReason: g.EndReason, Suspended: g.Suspended, Learning: g.Learning,
	}
}
