// Package audittest provides a recording audit sink for tests of the
// packages that emit audit events.
package audittest

import (
	"context"
	"sync"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Log records every event it is given. The zero Log is ready to use and
// safe for concurrent use.
type Log struct {
	mu     sync.Mutex
	events []audit.Event
}

// Record appends e. It never fails.
func (l *Log) Record(_ context.Context, e audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.events = append(l.events, e)
	return nil
}

// Events returns a copy of the events recorded so far.
func (l *Log) Events() []audit.Event {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]audit.Event(nil), l.events...)
}

// Types returns the types of the events recorded so far, in order.
func (l *Log) Types() []string {
	var out []string
	for _, e := range l.Events() {
		out = append(out, e.Type)
	}
	return out
}
