package intercept

import (
	"context"
	"errors"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// Question is a request to explain: what a caller with some grants asks
// of a target, as the pipeline would see it once classified.
type Question struct {
	Policies PolicySet // Decider required
	// Protocol is the target's; it describes the action.
	Protocol Protocol // required
	// Target is the target's configured name.
	Target string
	Caller access.Caller
	// Action is the classified request; its Kind and Target are set from
	// Protocol and Target, as the pipeline sets them.
	Action access.Action
	// Body is the request body as the protocol decodes it; nil: none.
	Body any
	// Grants are the caller's grants taken as in force (their state,
	// expiry and conditions are not checked). Nil: none.
	Grants []*jit.Grant
}

// Explanation is what the pipeline would decide for a Question, and what a
// denied agent would be told.
type Explanation struct {
	// Input is what the policies were given.
	Input authz.Input
	// Description names the action as a denial does.
	Description string
	Decision    authz.Decision
	// Suggestion is the access policies that would allow a request denied
	// for want of a grant; zero otherwise.
	Suggestion jit.Suggestion
	// Message is the denial the agent would get; "" when allowed.
	Message string
}

// Explain decides q with the same input, evaluation and denial text as the
// pipeline, for tools that ask "what would jitproxy do?". Unlike the
// pipeline it looks up no pending grant requests and holds back no grant
// by its conditions. An error means the policies (or, for a hint, the
// access policies) could not be evaluated.
func Explain(ctx context.Context, q Question) (Explanation, error) {
	if q.Policies.Decider == nil || q.Protocol == nil {
		return Explanation{}, errors.New("explain: Policies.Decider and Protocol are required")
	}
	action := q.Action
	action.Kind, action.Target = q.Protocol.Kind(), q.Target
	in := authz.Input{Caller: q.Caller, Action: action, Body: q.Body, Grants: PolicyGrants(q.Grants)}
	d, err := q.Policies.decide(ctx, in)
	if err != nil {
		return Explanation{}, err
	}
	e := Explanation{Input: in, Description: q.Protocol.Describe(action), Decision: d}
	if d.Allowed {
		return e, nil
	}
	var s *jit.Suggestion
	if noGrant(d) {
		if e.Suggestion, err = suggestPolicies(ctx, q.Policies, in); err != nil {
			return e, err
		}
		s = &e.Suggestion
	}
	e.Message = denialMessage(e.Description, d, nil, s)
	return e, nil
}
