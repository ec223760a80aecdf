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
	fail   error
}

// Record appends e, or fails as set by FailWith.
func (l *Log) Record(_ context.Context, e audit.Event) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fail != nil {
		return l.fail
	}
	l.events = append(l.events, e)
	return nil
}

// FailWith makes Record fail with err, as an enforced sink that cannot
// record does; nil makes it record again.
func (l *Log) FailWith(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.fail = err
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
