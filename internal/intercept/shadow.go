package intercept

import (
	"context"
	"slices"

	"github.com/jitproxy/jitproxy/internal/authz"
)

// shadow decides in again with the shadow policies, after the enforced
// decision d, and logs and counts how they compare; the request's outcome
// is d's, whatever happens here. It runs inline: with deterministic shadow
// policies a repeated input is a cache hit, and only a request with a body
// or an object costs a second evaluation.
func (p *pipeline) shadow(ctx context.Context, x *exchange, in authz.Input, d authz.Decision) {
	s, err := x.policies.Shadow.Decide(ctx, in)
	switch {
	case err != nil:
		x.up.metrics.Shadow(shadowError)
		p.log.Warn("evaluate the shadow policies", "request_id", x.event.RequestID, "target", in.Action.Target, "err", err)
	case sameDecision(d, s):
		x.up.metrics.Shadow(shadowSame)
	default:
		x.up.metrics.Shadow(shadowDiffers)
		p.log.Info("shadow decision differs", "request_id", x.event.RequestID, "target", in.Action.Target,
			"action", x.tunnel.target.Protocol.Describe(in.Action), "user", in.Caller.User, "session", in.Caller.Session,
			"enforced_allowed", d.Allowed, "enforced_reasons", d.Reasons,
			"shadow_allowed", s.Allowed, "shadow_reasons", s.Reasons)
	}
}

// sameDecision reports whether a and b decide alike: the same verdict, by
// the same grants, for the same reasons.
func sameDecision(a, b authz.Decision) bool {
	return a.Allowed == b.Allowed && a.Discovery == b.Discovery &&
		slices.Equal(a.GrantIDs, b.GrantIDs) && slices.Equal(a.Reasons, b.Reasons)
}
