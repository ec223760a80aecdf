package jit

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Candidate is a grant the caller could request under Policy, in
// Namespace ("" for a policy without namespaces), to cover an action.
type Candidate struct {
	Policy    *Policy
	Namespace string
}

// Suggestion says which access policies would allow a denied action, and
// how to request a grant under the best of them. The zero Suggestion means
// none would.
type Suggestion struct {
	// Policies are the names of the policies whose grant would allow the
	// action, quickest to get and narrowest first.
	Policies []string
	// Command requests a grant under the first of Policies.
	Command string
	// Pending are the caller's grant requests, still waiting for
	// approval, whose grant would allow the action.
	Pending []*Grant
}

// Hint is the Suggestion in a sentence an agent can act on: the pending
// requests that would allow it and what they wait for, else the policies
// and the command.
func (s Suggestion) Hint() string {
	if len(s.Pending) > 0 {
		var waits []string
		for _, g := range s.Pending {
			waits = append(waits, fmt.Sprintf("grant %s (%s) is waiting for %s until %s", g.ID, g.Policy, g.Waiting(), g.PendingUntil.UTC().Format("15:04:05Z")))
		}
		return "Your request that would allow it is pending: " + strings.Join(waits, "; ") + "."
	}
	if len(s.Policies) == 0 {
		return "No access policy you may request allows it; ask your jitproxy administrator."
	}
	return fmt.Sprintf("Access policies that would allow it: %s. Request a grant with: %s", strings.Join(s.Policies, ", "), s.Command)
}

// Waiting says what a pending grant waits for: "1 approval from sre",
// "2 approvals from sre or alice".
func (g *Grant) Waiting() string {
	if len(g.ApprovalSteps) == 0 {
		return approvalsFrom(max(0, g.RequiredApprovals-len(g.Approvals)), g.Approvers)
	}
	var parts []string
	for i, st := range g.ApprovalSteps {
		if n := st.Required - g.stepApprovals(i+1); n > 0 {
			parts = append(parts, approvalsFrom(n, st.Approvers))
		}
	}
	return strings.Join(parts, " and ")
}

// approvalsFrom says "N approval(s) from A or B".
func approvalsFrom(n int, from Subjects) string {
	noun := "approvals"
	if n == 1 {
		noun = "approval"
	}
	who := append(slices.Clone(from.Groups), from.Users...)
	if len(who) == 0 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %s from %s", n, noun, strings.Join(who, " or "))
}

// Suggest is Policies.Suggest with the access policies in force, and the
// caller's pending requests under the policies it names (Pending).
func (s *Service) Suggest(ctx context.Context, c access.Caller, action access.Action, permits func(context.Context, []Candidate) ([]string, error)) (Suggestion, error) {
	sg, err := s.policies().Suggest(ctx, c, action, permits)
	if err != nil || len(sg.Policies) == 0 {
		return sg, err
	}
	sg.Pending = s.Pending(ctx, c, action, sg.Policies)
	return sg, nil
}

// Pending returns the caller's grant requests still waiting for approval
// under the named access policies that would cover action: on its target,
// for its namespace, usable by the caller's session; oldest first. An
// agent that asked already is then told what its request waits for (see
// Suggestion.Hint). A failure to read them is logged and returns none:
// the hint is a courtesy.
func (s *Service) Pending(ctx context.Context, c access.Caller, action access.Action, policies []string) []*Grant {
	live, err := s.store.liveGrants(ctx, c.User, nil)
	if err != nil {
		s.log.Warn("read pending grants for a hint", "user", c.User, "err", err)
		return nil
	}
	now := s.now()
	session := &Session{ID: c.Session, User: c.User}
	ps := s.policies()
	var pending []*Grant
	for _, g := range live {
		if g.StateAt(now) != StatePending || g.Target != action.Target || !slices.Contains(policies, g.Policy) || !g.appliesTo(session) {
			continue
		}
		if p := ps.Get(g.Policy); p != nil {
			if ns, ok := p.RequestableNamespace(action.Namespace()); !ok || ns != g.Namespace {
				continue
			}
		}
		pending = append(pending, g)
	}
	slices.SortFunc(pending, func(a, b *Grant) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return pending
}

// Suggest finds the access policies of s the caller could request a grant
// under to be allowed action: of those the caller may request on the
// action's target, the ones whose grant would permit it, as told by
// permits, which evaluates the authorization policies with the candidates
// as the caller's only grants and returns the policy names of those that
// permit it. An error from permits is returned.
func (s *Policies) Suggest(ctx context.Context, c access.Caller, action access.Action, permits func(context.Context, []Candidate) ([]string, error)) (Suggestion, error) {
	return SuggestAmong(ctx, s.Requestable(c, action.Target), action, permits)
}

// SuggestAmong is Suggest among the given requestable policies.
func SuggestAmong(ctx context.Context, requestable []*Policy, action access.Action, permits func(context.Context, []Candidate) ([]string, error)) (Suggestion, error) {
	var candidates []Candidate
	byName := map[string]Candidate{}
	for _, p := range requestable {
		ns, ok := p.RequestableNamespace(action.Namespace())
		if !ok {
			continue
		}
		cand := Candidate{Policy: p, Namespace: ns}
		candidates = append(candidates, cand)
		byName[p.Name] = cand
	}
	if len(candidates) == 0 {
		return Suggestion{}, nil
	}
	names, err := permits(ctx, candidates)
	if err != nil {
		return Suggestion{}, err
	}
	names = slices.DeleteFunc(slices.Clone(names), func(n string) bool { _, ok := byName[n]; return !ok })
	if len(names) == 0 {
		return Suggestion{}, nil
	}
	// Suggest first what is quickest to get and grants least.
	slices.SortStableFunc(names, func(a, b string) int {
		pa, pb := byName[a].Policy, byName[b].Policy
		return cmp.Or(cmp.Compare(pa.Approval.Required, pb.Approval.Required), cmp.Compare(breadth(pa), breadth(pb)))
	})
	cmd := "jitproxy grant request " + names[0]
	if ns := byName[names[0]].Namespace; ns != "" {
		cmd += " --namespace " + ns
	}
	cmd += ` --reason "..."`
	return Suggestion{Policies: names, Command: cmd}, nil
}

// breadth is a rough measure of how much a policy grants.
func breadth(p *Policy) int {
	n := 0
	for _, perm := range p.Permissions {
		switch {
		case perm.Kubernetes != nil:
			k := perm.Kubernetes
			n += len(k.Verbs) * max(1, len(k.Resources)+len(k.NonResourceURLs))
		case perm.AWS != nil:
			n += len(perm.AWS.Actions) * max(1, len(perm.AWS.Resources))
		}
	}
	return n
}
