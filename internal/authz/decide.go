package authz

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"

	"github.com/open-policy-agent/opa/v1/rego"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Reasons the engine gives itself.
const (
	// ReasonNoGrant is the reason of a default deny.
	ReasonNoGrant = "no active grant permits this request"
	// ReasonDiscovery is the reason of a request allowed by permit_discovery.
	ReasonDiscovery = "discovery documents need no grant"
)

// Input is what a decision is made on.
type Input struct {
	Caller access.Caller
	Action access.Action
	// Body is the request body decoded from JSON (maps, slices, strings,
	// float64, bool, nil), or nil when the request has none or it is not JSON.
	// Policies see it as input.body. For admission decisions prefer Object:
	// a body is a patch or an unapplied manifest, not what will be stored.
	Body any
	// Object is the object as the target will store it, decoded from JSON
	// like Body: for Kubernetes, the result of sending a create, update or
	// patch (or a write of pods/ephemeralcontainers, where it is the whole
	// Pod) with dryRun=All. Policies see it as input.object. Nil when the
	// request writes no object; input.object is then absent.
	Object any
	// OldObject is the stored object an update or patch replaces, decoded
	// from JSON like Body. Policies see it as input.old_object. Nil for a
	// create and for requests that write no object; input.old_object is
	// then absent.
	OldObject any
	// Grants are the caller's active grants. Decide does not check their
	// state or expiry: the caller passes only grants in force. Nil is none.
	Grants *GrantSet
}

// Grant is the part of an active grant that policies see.
// Policies see it as an element of input.grants, with the JSON names below.
type Grant struct {
	ID          string              `json:"id"`
	Policy      string              `json:"policy"`
	Target      string              `json:"target"`
	Namespace   string              `json:"namespace"` // "" for a cluster-wide grant
	Permissions []access.Permission `json:"permissions"`
}

// Decision is the outcome of evaluating the policies for one Input. A deny
// is a Decision with Allowed false, never an error. Decisions taken from
// the cache share their slices: callers must not modify them.
type Decision struct {
	Allowed bool
	// GrantIDs are the IDs of the grants that permit the request, sorted.
	// They are set even when a forbid rule denies it.
	GrantIDs []string
	// Discovery is true when policy lets the request use the target's
	// discovery identity instead of a grant's credential.
	Discovery bool
	// Reasons says why: the forbid reasons of a forbidden request, or
	// ReasonNoGrant, or for an allowed request the permitting grants.
	Reasons []string
}

// keyBuffers recycles the buffers decision cache keys are built in.
var keyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// Decide evaluates the policies for in, or returns the decision an equal
// input got before (see Engine). An error means the policies could not be
// evaluated; the request must then be denied.
func (e *Engine) Decide(ctx context.Context, in Input) (Decision, error) {
	if e.cache == nil || in.Body != nil || in.Object != nil || in.OldObject != nil {
		return e.evaluate(ctx, in)
	}
	buf := keyBuffers.Get().(*[]byte)
	defer keyBuffers.Put(buf)
	keyed := in
	if !e.readsSourceAddr {
		// No policy can read it, so no decision depends on it.
		keyed.Caller.SourceAddr = ""
	}
	key := keyed.key((*buf)[:0])
	*buf = key
	if d, ok := e.cache.get(key); ok {
		return d, nil
	}
	d, err := e.evaluate(ctx, in)
	if err != nil {
		return d, err
	}
	e.cache.put(string(key), d)
	return d, nil
}

// key is what the decision for an input without body or objects depends
// on: input.caller and input.action, encoded whole, and the grants'
// fingerprint.
func (in Input) key(b []byte) []byte {
	b = appendKey(b, reflect.ValueOf(&in.Caller).Elem())
	b = appendKey(b, reflect.ValueOf(&in.Action).Elem())
	return append(b, in.Grants.fingerprint()[:]...)
}

func (e *Engine) evaluate(ctx context.Context, in Input, opts ...rego.EvalOption) (Decision, error) {
	input, err := in.parsedInput()
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policies: %w", err)
	}
	rs, err := e.query.Eval(ctx, append(opts, rego.EvalParsedInput(input))...)
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policies: %w", err)
	}
	if len(rs) != 1 || len(rs[0].Expressions) != 1 {
		return Decision{}, fmt.Errorf("evaluate policies: got %d results, want 1", len(rs))
	}
	out, ok := rs[0].Expressions[0].Value.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("evaluate policies: result is %T, want an object", rs[0].Expressions[0].Value)
	}
	permit, err := stringSet(out["permit"])
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policies: permit: %w", err)
	}
	forbid, err := stringSet(out["forbid"])
	if err != nil {
		return Decision{}, fmt.Errorf("evaluate policies: forbid: %w", err)
	}
	discovery, ok := out["discovery"].(bool)
	if !ok {
		return Decision{}, fmt.Errorf("evaluate policies: discovery is %T, want a boolean", out["discovery"])
	}
	d := Decision{GrantIDs: permit, Discovery: discovery}
	switch {
	case len(forbid) > 0:
		d.Reasons = forbid
	case len(permit) > 0:
		d.Allowed = true
		for _, id := range permit {
			d.Reasons = append(d.Reasons, "permitted by grant "+id)
		}
	case discovery:
		d.Allowed = true
		d.Reasons = []string{ReasonDiscovery}
	default:
		d.Reasons = []string{ReasonNoGrant}
	}
	return d, nil
}

func stringSet(v any) ([]string, error) {
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("got %T, want a set", v)
	}
	out := make([]string, 0, len(list))
	for _, item := range list {
		s, ok := item.(string)
		if !ok {
			return nil, fmt.Errorf("got a %T element, want strings", item)
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out, nil
}
