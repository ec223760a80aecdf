package authz

import (
	"sync"

	"github.com/open-policy-agent/opa/v1/ast"
)

// decisionCache remembers decisions by their input's key (see
// Engine.Decide), up to about 2×max of them: when the current generation
// is full it becomes the old one and the one before is dropped; a hit in
// the old generation moves to the current one. So what is used stays, and
// memory is bounded whatever the callers send.
type decisionCache struct {
	max int

	mu       sync.Mutex
	cur, old map[string]Decision
}

func newDecisionCache(max int) *decisionCache {
	return &decisionCache{max: max, cur: make(map[string]Decision)}
}

func (c *decisionCache) get(key []byte) (Decision, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d, ok := c.cur[string(key)]; ok {
		return d, true
	}
	d, ok := c.old[string(key)]
	if ok {
		c.putLocked(string(key), d)
	}
	return d, ok
}

func (c *decisionCache) put(key string, d Decision) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putLocked(key, d)
}

func (c *decisionCache) putLocked(key string, d Decision) {
	if len(c.cur) >= c.max {
		c.old, c.cur = c.cur, make(map[string]Decision, c.max)
	}
	c.cur[key] = d
}

// deterministic reports whether the policies' decisions depend on their
// input alone, so that a decision may be reused for an equal input: no
// module refers to a built-in function declared nondeterministic (one that
// reads the clock, random numbers, the network or the runtime, such as
// time.now_ns, rand.intn, http.send or opa.runtime), by OPA's own
// declarations or by those of the given builtins. The policies have no
// other source of data than their modules and the input.
func deterministic(modules []*ast.Module, builtins []Builtin) bool {
	nondeterministic := map[string]bool{}
	for name, b := range ast.BuiltinMap {
		if b.IsNondeterministic() {
			nondeterministic[name] = true
		}
	}
	for _, b := range builtins {
		nondeterministic[b.Name] = b.Nondeterministic
	}
	found := false
	for _, m := range modules {
		ast.WalkRefs(m, func(ref ast.Ref) bool {
			if !found && nondeterministic[ref.String()] {
				found = true
			}
			return found
		})
	}
	return !found
}
