package jit

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
)

// watch follows one proxied request's session and, once it is set, the
// grant the request runs under, so that a long-lived request (a watch, a
// followed log, exec, port-forward) ends when either stops being in force:
// a revocation or a session's end made on any replica reaches every replica
// through the changes channel within milliseconds. Expiry needs no watch
// (the request's deadline is the grant's expiry).
//
// A watch is created before the request's grants are read, so that no change
// can fall between the read and the watch. onEnd runs at most once.
type watch struct {
	set     *watchSet
	session string
	onEnd   func()
	once    sync.Once

	// Guarded by set.mu.
	grant   string
	pending map[string]bool // grants changed before SetGrant named one
}

// setGrant names the grant the request runs under. If that grant changed
// since the watch began, its state is checked now.
func (w *watch) setGrant(id string) {
	s := w.set
	s.mu.Lock()
	w.grant = id
	changed := w.pending[id]
	w.pending = nil
	s.mu.Unlock()
	if changed {
		s.check("grant:" + id)
	}
}

// stop forgets the watch.
func (w *watch) stop() {
	s := w.set
	s.mu.Lock()
	delete(s.watches, w)
	s.mu.Unlock()
}

func (w *watch) end() { w.once.Do(w.onEnd) }

// watchSet holds the open watches of a Service and checks, on every change
// message, whether what they follow has ended.
type watchSet struct {
	// ended reports whether the grant or session named by key ("grant:ID",
	// "session:ID") is no longer in force. An error leaves the watches open:
	// the request's deadline still bounds them, and the check runs again on
	// the next change or resubscription.
	ended func(ctx context.Context, key string) (bool, error)
	onErr func(key string, err error)

	mu      sync.Mutex
	ctx     context.Context // bounds checks; Run sets it
	watches map[*watch]struct{}
}

func newWatchSet(ended func(context.Context, string) (bool, error), onErr func(string, error)) *watchSet {
	return &watchSet{ended: ended, onErr: onErr, ctx: context.Background(), watches: map[*watch]struct{}{}}
}

// run makes checks run under ctx, which ends them when the Service stops.
func (s *watchSet) run(ctx context.Context) {
	s.mu.Lock()
	s.ctx = ctx
	s.mu.Unlock()
}

func (s *watchSet) add(session string, onEnd func()) *watch {
	w := &watch{set: s, session: session, onEnd: onEnd}
	s.mu.Lock()
	s.watches[w] = struct{}{}
	s.mu.Unlock()
	return w
}

// changed handles one change: key names a grant or a session ("grant:ID",
// "session:ID").
func (s *watchSet) changed(key string) {
	kind, id, ok := strings.Cut(key, ":")
	if !ok {
		return
	}
	interested := false
	s.mu.Lock()
	for w := range s.watches {
		switch {
		case kind == "session" && w.session == id, kind == "grant" && w.grant == id:
			interested = true
		case kind == "grant" && w.grant == "":
			if w.pending == nil {
				w.pending = map[string]bool{}
			}
			w.pending[id] = true
		}
	}
	s.mu.Unlock()
	if interested {
		s.check(key)
	}
}

// recheckAll checks everything open watches follow, after the subscription
// was (re)established: messages may have been missed while it was down.
func (s *watchSet) recheckAll() {
	keys := map[string]bool{}
	s.mu.Lock()
	for w := range s.watches {
		keys["session:"+w.session] = true
		if w.grant != "" {
			keys["grant:"+w.grant] = true
		}
	}
	s.mu.Unlock()
	for k := range keys {
		s.check(k)
	}
}

// check asks, in the background, whether key has ended, and ends the
// watches that follow it if so.
func (s *watchSet) check(key string) {
	s.mu.Lock()
	ctx := s.ctx
	s.mu.Unlock()
	go func() {
		ended, err := s.ended(ctx, key)
		if err != nil {
			if !errors.Is(err, context.Canceled) {
				s.onErr(key, err)
			}
			return
		}
		if !ended {
			return
		}
		kind, id, _ := strings.Cut(key, ":")
		var over []*watch
		s.mu.Lock()
		for w := range s.watches {
			if kind == "session" && w.session == id || kind == "grant" && w.grant == id {
				over = append(over, w)
			}
		}
		s.mu.Unlock()
		// Outside the lock: what a request does when it ends (cancel a
		// context, close a connection) holds up no other request.
		for _, w := range over {
			w.end()
		}
	}()
}

// Watch follows a proxied request of the session sessionID, so that a
// long-lived request (a watch, a followed log, exec, port-forward) ends when
// the session or the request's grant stops being in force: a revocation or
// a session's end made on any replica reaches every replica through the
// changes channel within milliseconds. (Expiry needs no watch: the request's
// deadline is the grant's expiry.) Call it before reading the session's
// grants, so that no change falls between the read and the watch; name the
// grant with setGrant once chosen (if it changed since Watch, it is checked
// at once). onEnd is called once the session or the grant ended, at most
// once, in a goroutine of Watch's own: it must not block. stop must be
// called when the request ends; an end found as stop is called may still
// call onEnd after stop returned. Run must be running for changes to be
// seen. setGrant and stop are safe for concurrent use.
//
// A callback rather than a channel: a channel would need a goroutine per
// request to wait on it.
func (s *Service) Watch(sessionID string, onEnd func()) (setGrant func(grantID string), stop func()) {
	w := s.watches.add(sessionID, onEnd)
	return w.setGrant, w.stop
}

// ended reports whether the grant or session key names is no longer in
// force: gone, ended, expired, suspended, or held by a lock.
func (s *Service) ended(ctx context.Context, key string) (bool, error) {
	kind, id, _ := strings.Cut(key, ":")
	switch kind {
	case "grant":
		g, err := s.store.getGrant(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		now := s.now()
		if g.StateAt(now) != StateActive || g.Suspended != "" {
			return true, nil
		}
		locks, err := s.locksFor(ctx, now)
		return slices.ContainsFunc(locks, func(l *Lock) bool { return l.locksGrant(g) }), err
	case "session":
		ss, err := s.store.getSession(ctx, id)
		if errors.Is(err, ErrNotFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
		now := s.now()
		if !now.Before(ss.ExpiresAt) {
			return true, nil
		}
		locks, err := s.locksFor(ctx, now)
		return slices.ContainsFunc(locks, func(l *Lock) bool { return l.locksSession(&ss.Session) }), err
	}
	return false, nil
}
