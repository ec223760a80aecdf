// Package redistest helps tests count what a go-redis client sends.
package redistest

import (
	"context"
	"sync"

	"github.com/redis/go-redis/v9"
)

// RoundTrips is a go-redis hook (add it with AddHook) that records each
// round trip to Redis as the names of its commands: one for a command, one
// for a pipeline or transaction. The commands that set up a connection
// (HELLO, CLIENT) are left out. The zero value is ready to use and safe
// for concurrent use.
type RoundTrips struct {
	mu   sync.Mutex
	each [][]string
}

// DialHook leaves dialing as it is.
func (r *RoundTrips) DialHook(next redis.DialHook) redis.DialHook { return next }

// ProcessHook records a command.
func (r *RoundTrips) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		r.add([]redis.Cmder{cmd})
		return next(ctx, cmd)
	}
}

// ProcessPipelineHook records a pipeline or a transaction.
func (r *RoundTrips) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.add(cmds)
		return next(ctx, cmds)
	}
}

func (r *RoundTrips) add(cmds []redis.Cmder) {
	var names []string
	for _, c := range cmds {
		if n := c.Name(); n != "hello" && n != "client" {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.each = append(r.each, names)
}

// Take returns the round trips recorded since the last Take, oldest first,
// and forgets them.
func (r *RoundTrips) Take() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	each := r.each
	r.each = nil
	return each
}
