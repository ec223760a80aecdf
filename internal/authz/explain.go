package authz

import (
	"context"
	"fmt"
	"io"

	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/topdown"
	"github.com/open-policy-agent/opa/v1/topdown/lineage"
)

// Explanation levels of Engine.Explain, as `opa eval --explain` names them.
const (
	// ExplainFull is every step of the evaluation.
	ExplainFull = "full"
	// ExplainNotes is only the notes policies made with trace(msg).
	ExplainNotes = "notes"
	// ExplainFails is only the expressions that failed.
	ExplainFails = "fails"
)

// Explain evaluates the policies for in as Decide does, but never from the
// cache, and writes OPA's explanation of the evaluation to w, at level
// (ExplainFull, ExplainNotes or ExplainFails), with the location of each
// step (the lines at query:N are the engine's own query, which reads the
// policy's permit, forbid and permit_discovery). It is slow, for people,
// never for requests. An error means the
// level is unknown or the policies could not be evaluated.
func (e *Engine) Explain(ctx context.Context, in Input, level string, w io.Writer) (Decision, error) {
	var filter func([]*topdown.Event) []*topdown.Event
	switch level {
	case ExplainFull:
		filter = lineage.Full
	case ExplainNotes:
		filter = lineage.Notes
	case ExplainFails:
		filter = lineage.Fails
	default:
		return Decision{}, fmt.Errorf("explain: unknown level %q (want %s, %s or %s)", level, ExplainFull, ExplainNotes, ExplainFails)
	}
	buf := topdown.NewBufferTracer()
	d, err := e.evaluate(ctx, in, rego.EvalQueryTracer(buf))
	if err != nil {
		return d, err
	}
	topdown.PrettyTraceWithLocation(w, filter(*buf))
	return d, nil
}
