package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Config configures a Recorder.
type Config struct {
	// Sinks are the destinations of the audit stream, each with its own
	// spool, format, mode and filter. None: events are dropped.
	Sinks []SinkConfig
	Now   func() time.Time
	// Logger receives delivery problems (never an event's content).
	Logger *slog.Logger
}

// Recorder stamps events and spools each to every sink that takes it;
// each sink's spool is delivered by its own goroutine, so a slow or absent
// sink never holds up Record. It is safe for concurrent use.
type Recorder struct {
	streams []*stream
	now     func() time.Time
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	once    sync.Once
}

// ErrNotRecorded wraps the failures of enforced sinks: the event is not
// recorded, and the request it is about must not go on.
var ErrNotRecorded = errors.New("the audit event could not be recorded")

// New opens every sink's spool (delivering what an earlier run left in it)
// and starts delivering. Close stops it.
func New(cfg Config) (*Recorder, error) {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	r := &Recorder{now: cfg.Now}
	names := map[string]bool{}
	var errs []error
	for _, sc := range cfg.Sinks {
		if names[sc.Name] {
			errs = append(errs, fmt.Errorf("audit sink %q is configured twice", sc.Name))
			continue
		}
		names[sc.Name] = true
		s, err := openStream(sc, cfg.Now, cfg.Logger.With("component", "audit"))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		r.streams = append(r.streams, s)
	}
	if err := errors.Join(errs...); err != nil {
		for _, s := range r.streams {
			s.spool.close()
		}
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	for _, s := range r.streams {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			s.run(ctx)
		}()
	}
	return r, nil
}

// Record fills in Version, ID and Time where they are zero and spools e
// for every sink that takes it. It returns an error wrapping
// ErrNotRecorded when an enforced sink could not spool e (the other sinks
// still have it); a best_effort sink's failure is counted and logged
// instead. It never waits for a delivery.
func (r *Recorder) Record(_ context.Context, e Event) error {
	if e.Version == "" {
		e.Version = SchemaVersion
	}
	if e.ID == "" {
		e.ID = newID()
	}
	if e.Time.IsZero() {
		e.Time = r.now().UTC()
	}
	var errs []error
	for _, s := range r.streams {
		if s.wants(e) {
			if err := s.append(&e); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrNotRecorded, errors.Join(errs...))
	}
	return nil
}

// Stats returns each sink's counters.
func (r *Recorder) Stats() []Stats {
	out := make([]Stats, len(r.streams))
	for i, s := range r.streams {
		out[i] = s.stats()
	}
	return out
}

// readyRoom is the room an enforced sink's spool must have left for the
// recorder to be ready: a few large events.
const readyRoom = 64 << 10

// Ready returns nil when every enforced sink's spool can take events, and
// otherwise an error wrapping ErrNotRecorded that names the sinks whose
// spool is full (within 64 KiB): their requests would be refused until
// the sink takes what is spooled. Best-effort sinks never make it fail.
// It is safe for concurrent use.
func (r *Recorder) Ready() error {
	var errs []error
	for _, s := range r.streams {
		if s.cfg.Mode == Enforced && !s.spool.room(readyRoom) {
			errs = append(errs, fmt.Errorf("audit sink %q: %w", s.cfg.Name, ErrSpoolFull))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w: %w", ErrNotRecorded, errors.Join(errs...))
	}
	return nil
}

// Close stops delivering, waiting up to timeout for the sinks to take what
// is spooled, then syncs and closes the spools and the sinks. What is left
// is delivered by the next Recorder on the same spools.
func (r *Recorder) Close(timeout time.Duration) error {
	var errs []error
	r.once.Do(func() {
		deadline := time.Now().Add(timeout)
		for time.Now().Before(deadline) && r.pending() {
			time.Sleep(10 * time.Millisecond)
		}
		r.cancel()
		r.wg.Wait()
		for _, s := range r.streams {
			errs = append(errs, s.spool.close(), s.cfg.Sink.Close())
		}
	})
	return errors.Join(errs...)
}

func (r *Recorder) pending() bool {
	for _, s := range r.streams {
		if st := s.stats(); st.Spooled > 0 && st.LastError == "" {
			return true
		}
	}
	return false
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
