package jit

import (
	"context"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
)

// AutoApprover evaluates the auto-approval rules written in Rego beside the
// authorization policies (package jitproxy.approval, rule auto_approve: a
// set of rule names). It returns the names of the rules that approve the
// request; an error means none does.
type AutoApprover interface {
	AutoApprove(ctx context.Context, input any) ([]string, error)
}

// AutoApprovalInput is a grant request as the auto-approval rules see it
// (their input).
type AutoApprovalInput struct {
	Policy          string              `json:"policy"`
	PolicyVersion   string              `json:"policy_version"`
	Target          string              `json:"target"`
	Namespace       string              `json:"namespace"`
	DurationSeconds float64             `json:"duration_seconds"`
	Reason          string              `json:"reason"`
	Permissions     []access.Permission `json:"permissions"`
	// RequiredApprovals is how many approvals the policy asks for.
	RequiredApprovals int                   `json:"required_approvals"`
	Requester         AutoApprovalRequester `json:"requester"`
	// Time is when the request is made, RFC 3339 in UTC.
	Time string `json:"time"`
}

// AutoApprovalRequester is who asks: a person, or an agent for its user.
type AutoApprovalRequester struct {
	Name    string   `json:"name"`
	Groups  []string `json:"groups"`
	Agent   string   `json:"agent,omitempty"`
	Session string   `json:"session,omitempty"`
}

// autoApprove asks the rules about g, requested by by, and returns the
// first rule that approves it, or "". A failure to evaluate them is
// logged: the request then waits for people, as without rules.
func (s *Service) autoApprove(ctx context.Context, by Principal, g *Grant, now time.Time) string {
	if s.cfg.AutoApprover == nil {
		return ""
	}
	rules, err := s.cfg.AutoApprover.AutoApprove(ctx, AutoApprovalInput{
		Policy: g.Policy, PolicyVersion: g.PolicyVersion, Target: g.Target, Namespace: g.Namespace,
		DurationSeconds: g.Duration.Seconds(), Reason: g.Reason, Permissions: g.Permissions,
		RequiredApprovals: g.RequiredApprovals,
		Requester:         AutoApprovalRequester{Name: by.Name, Groups: by.Groups, Agent: by.Agent, Session: by.Session},
		Time:              now.UTC().Format(time.RFC3339),
	})
	if err != nil {
		s.log.Error("evaluate the auto-approval rules; the request waits for approval", "policy", g.Policy, "err", err)
		return ""
	}
	if len(rules) == 0 {
		return ""
	}
	return rules[0]
}
