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
}

// Hint is the Suggestion in a sentence an agent can act on.
func (s Suggestion) Hint() string {
	if len(s.Policies) == 0 {
		return "No access policy you may request allows it; ask your jitproxy administrator."
	}
	return fmt.Sprintf("Access policies that would allow it: %s. Request a grant with: %s", strings.Join(s.Policies, ", "), s.Command)
}

// Suggest is Policies.Suggest with the access policies in force.
func (s *Service) Suggest(ctx context.Context, c access.Caller, action access.Action, permits func(context.Context, []Candidate) ([]string, error)) (Suggestion, error) {
	return s.policies().Suggest(ctx, c, action, permits)
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
