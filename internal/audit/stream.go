package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// Mode says what a sink's failure to take an event means for the request.
type Mode string

const (
	// Enforced: an event that cannot be spooled fails Record, and the
	// request it is about is refused. No audit, no credential.
	Enforced Mode = "enforced"
	// BestEffort: an event that cannot be spooled is dropped, counted and
	// logged; the request goes on.
	BestEffort Mode = "best_effort"
)

// SyncPolicy says when the spool is fsynced: what a crash of the machine
// (not of jitproxy: a record is in the operating system's hands once
// written) can lose.
type SyncPolicy string

const (
	// SyncInterval fsyncs the spool every SinkConfig.SyncEvery (group
	// commit): a machine crash loses at most the records of that interval.
	SyncInterval SyncPolicy = "interval"
	// SyncAlways fsyncs after every record, before Record returns: a
	// machine crash loses nothing Record reported recorded.
	SyncAlways SyncPolicy = "always"
)

// SinkConfig configures one sink's stream.
type SinkConfig struct {
	// Name identifies the sink in logs and counters, and names its spool
	// directory. Required, unique.
	Name string
	// Sink delivers the records. Required.
	Sink Sink
	// Encoder writes events in the sink's format; default AppendNative.
	Encoder Encoder
	// Mode; default Enforced.
	Mode Mode
	// Types, if not empty, are the event types the sink takes.
	Types []string
	// SpoolDir holds the sink's spool. Required.
	SpoolDir string
	// Sync; default SyncInterval, every SyncEvery (default 10ms).
	Sync      SyncPolicy
	SyncEvery time.Duration
	// MaxSpoolBytes caps the spool; default 1 GiB.
	MaxSpoolBytes int64
	// SegmentBytes is the size at which a new segment starts; default 16 MiB.
	SegmentBytes int64
	// BatchSize is the most records one Deliver gets; default 100.
	BatchSize int
	// DeliverEvery is the least time from one Deliver to the next unless
	// a whole batch is waiting; default 10ms. A record spooled sooner
	// waits for the rest of the interval, and goes in one batch with
	// those spooled meanwhile: a sink's cost per batch (an fsync, an HTTP
	// request, an acknowledgement, the spool's delivered mark) is shared
	// by the events of an interval instead of paid for each.
	DeliverEvery time.Duration
	// ChainKey, if set, makes the hash chain an HMAC chain.
	ChainKey []byte
	// RetryMin and RetryMax bound the backoff between failed deliveries;
	// defaults 100ms and 30s.
	RetryMin, RetryMax time.Duration
}

func (c *SinkConfig) defaults() error {
	var errs []error
	if c.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if c.Sink == nil {
		errs = append(errs, errors.New("sink is required"))
	}
	if c.SpoolDir == "" {
		errs = append(errs, errors.New("spool directory is required"))
	}
	if c.Encoder == nil {
		c.Encoder = AppendNative
	}
	switch c.Mode {
	case "":
		c.Mode = Enforced
	case Enforced, BestEffort:
	default:
		errs = append(errs, fmt.Errorf("mode %q: want enforced or best_effort", c.Mode))
	}
	switch c.Sync {
	case "":
		c.Sync = SyncInterval
	case SyncInterval, SyncAlways:
	default:
		errs = append(errs, fmt.Errorf("sync %q: want interval or always", c.Sync))
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&c.SyncEvery, 10*time.Millisecond)
	def(&c.DeliverEvery, 10*time.Millisecond)
	def(&c.RetryMin, 100*time.Millisecond)
	def(&c.RetryMax, 30*time.Second)
	if c.MaxSpoolBytes <= 0 {
		c.MaxSpoolBytes = 1 << 30
	}
	if c.SegmentBytes <= 0 {
		c.SegmentBytes = 16 << 20
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("audit sink %q: %w", c.Name, err)
	}
	return nil
}

// Stats are a sink's counters since jitproxy started.
type Stats struct {
	Sink string `json:"sink"`
	Mode Mode   `json:"mode"`
	// Recorded events were spooled; Dropped could not be (best_effort) and
	// Refused could not be and failed their request (enforced).
	Recorded uint64 `json:"recorded"`
	Dropped  uint64 `json:"dropped"`
	Refused  uint64 `json:"refused"`
	// Delivered records were acknowledged by the sink; Retried counts
	// failed deliveries of a batch.
	Delivered uint64 `json:"delivered"`
	Retried   uint64 `json:"retried"`
	// Spooled is the number of records written and not yet delivered,
	// SpoolBytes the spool's size on disk.
	Spooled    uint64 `json:"spooled"`
	SpoolBytes int64  `json:"spool_bytes"`
	// OldestUndelivered is the age of the oldest record not yet
	// delivered; zero when none is waiting.
	OldestUndelivered time.Duration `json:"-"`
	// OldestUndeliveredSeconds is OldestUndelivered in seconds, for JSON.
	OldestUndeliveredSeconds float64 `json:"oldest_undelivered_seconds"`
	// LastError is the last delivery error, "" after a success.
	LastError string `json:"last_error,omitempty"`
}

// stream is one sink's spool, and the goroutine that delivers it.
type stream struct {
	cfg   SinkConfig
	types map[string]bool
	spool *spool
	log   *slog.Logger
	now   func() time.Time

	wake chan struct{}
	done chan struct{}

	recorded, dropped, refused, delivered, retried atomic.Uint64
	lastDropLog                                    atomic.Int64 // unix seconds

	// sealer and data are used by line, under the spool's lock.
	sealer *sealer
	data   []byte

	mu          sync.Mutex
	deliveredTo uint64 // sequence number
	oldest      time.Time
	lastErr     string
}

func openStream(cfg SinkConfig, now func() time.Time, log *slog.Logger) (*stream, error) {
	if err := cfg.defaults(); err != nil {
		return nil, err
	}
	sp, err := openSpool(cfg.SpoolDir, cfg.SegmentBytes, cfg.MaxSpoolBytes)
	if err != nil {
		return nil, fmt.Errorf("audit sink %q: open spool: %w", cfg.Name, err)
	}
	d, err := sp.delivered()
	if errors.Is(err, errBadMark) {
		// Delivered again from the first segment on: at least once.
		log.Warn("audit spool: delivering every spooled record again", "sink", cfg.Name, "from_seq", d+1, "err", err)
	} else if err != nil {
		sp.close()
		return nil, fmt.Errorf("audit sink %q: read the delivered mark: %w", cfg.Name, err)
	}
	s := &stream{
		cfg: cfg, spool: sp, now: now,
		sealer: NewChainer(cfg.ChainKey).newSealer(),
		log:    log.With("sink", cfg.Name),
		wake:   make(chan struct{}, 1), done: make(chan struct{}),
		deliveredTo: d,
	}
	if len(cfg.Types) > 0 {
		s.types = map[string]bool{}
		for _, t := range cfg.Types {
			s.types[t] = true
		}
	}
	return s, nil
}

func (s *stream) wants(e Event) bool { return s.types == nil || s.types[e.Type] }

// append spools e. For an enforced sink an error fails the request.
func (s *stream) append(e *Event) error {
	seq, err := s.spool.append(func(b []byte, seq uint64, prev string) ([]byte, string, error) {
		return s.line(b, e, seq, prev)
	})
	if err == nil && s.cfg.Sync == SyncAlways {
		err = s.spool.sync(seq)
	}
	if err != nil {
		if s.cfg.Mode == Enforced {
			s.refused.Add(1)
			return fmt.Errorf("audit sink %q: %w", s.cfg.Name, err)
		}
		s.dropped.Add(1)
		// Logged at most once a second per sink, with the count.
		if now := s.now().Unix(); s.lastDropLog.Swap(now) != now {
			s.log.Error("audit event dropped (best_effort sink)", "type", e.Type, "id", e.ID, "dropped", s.dropped.Load(), "err", err)
		}
		return nil
	}
	s.recorded.Add(1)
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// line appends the spool line of e, numbered seq and chained to prev, to
// b, and returns it with the record's hash. It is called under the
// spool's lock: it uses the stream's sealer and encoding buffer.
func (s *stream) line(b []byte, e *Event, seq uint64, prev string) ([]byte, string, error) {
	data, err := s.cfg.Encoder(s.data[:0], *e, Chain{Seq: seq, Prev: prev})
	if err != nil {
		return b, "", err
	}
	s.data = keep(data)
	i := bytes.LastIndex(data, hashPlaceholder)
	if i < 0 {
		return b, "", errNoPlaceholder
	}
	if bytes.IndexByte(data, '\n') >= 0 {
		return b, "", errors.New("audit: encoded event holds a newline")
	}
	sum := s.sealer.sum(prev, data)
	b, err = appendSpoolLine(b, seq, e.ID, e.Type, e.Time, data, i, sum)
	if err != nil {
		return b, "", err
	}
	return b, string(sum), nil
}

// keep returns b to be used again, unless it grew past what records
// usually need (a policy.loaded event with many policies): a buffer kept
// for every record should not hold on to one record's peak.
func keep(b []byte) []byte {
	if cap(b) > 64<<10 {
		return nil
	}
	return b
}

// run delivers the spool until ctx ends, and syncs it on the interval.
func (s *stream) run(ctx context.Context) {
	defer close(s.done)
	r := newSpoolReader(s.spool, s.deliveredTo+1)
	defer r.close()
	if s.cfg.Sync == SyncInterval {
		// Its own goroutine: a delivery that waits (a slow sink, a
		// backoff) must not delay the group commit.
		syncDone := make(chan struct{})
		defer func() { <-syncDone }()
		go func() {
			defer close(syncDone)
			tick := time.NewTicker(s.cfg.SyncEvery)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if err := s.spool.sync(s.spool.written()); err != nil {
						s.log.Error("sync the audit spool", "err", err)
					}
				}
			}
		}()
	}
	backoff := s.cfg.RetryMin
	var batch []spoolLine
	var last time.Time // when the last delivery started
	for {
		if len(batch) == 0 {
			var err error
			if batch, err = r.read(s.cfg.BatchSize); err != nil && len(batch) == 0 {
				s.setErr(err)
				s.log.Error("read the audit spool; will retry", "retry_in", backoff, "err", err)
				if !sleep(ctx, jitter(backoff)) {
					return
				}
				backoff = min(2*backoff, s.cfg.RetryMax)
				r.close()
				continue
			}
			if len(batch) > 0 {
				s.setOldest(batch[0].Time)
			}
			// Gather what is spooled until DeliverEvery after the last
			// delivery. (A read error here is the next read's.)
			if wait := s.cfg.DeliverEvery - time.Since(last); len(batch) > 0 && len(batch) < s.cfg.BatchSize && wait > 0 {
				if !sleep(ctx, wait) {
					return
				}
				more, _ := r.read(s.cfg.BatchSize - len(batch))
				batch = append(batch, more...)
			}
		}
		if len(batch) > 0 {
			last = time.Now()
			if err := s.deliver(ctx, batch); err != nil {
				if ctx.Err() != nil {
					return
				}
				s.retried.Add(1)
				s.setErr(err)
				s.log.Warn("deliver audit events; will retry", "records", len(batch), "first_seq", batch[0].Seq, "retry_in", backoff, "err", err)
				if !sleep(ctx, jitter(backoff)) {
					return
				}
				backoff = min(2*backoff, s.cfg.RetryMax)
				continue
			}
			backoff = s.cfg.RetryMin
			last := batch[len(batch)-1].Seq
			for _, l := range batch {
				s.spool.release(l.Seq, l.size)
			}
			s.delivered.Add(uint64(len(batch)))
			s.setDelivered(last)
			if err := s.spool.markDelivered(last); err != nil {
				s.log.Error("mark audit events delivered", "err", err)
			}
			batch = nil
			continue
		}
		s.setOldest(time.Time{})
		select {
		case <-ctx.Done():
			return
		case <-s.wake:
		case <-time.After(time.Second):
			// A record appended while the wake-up was pending is read
			// at the latest now.
		}
	}
}

func (s *stream) deliver(ctx context.Context, batch []spoolLine) error {
	recs := make([]Record, len(batch))
	for i, l := range batch {
		recs[i] = Record{ID: l.ID, Seq: l.Seq, Type: l.Type, Time: l.Time, Data: l.Data}
	}
	return s.cfg.Sink.Deliver(ctx, recs)
}

func (s *stream) setOldest(t time.Time) {
	s.mu.Lock()
	s.oldest = t
	s.mu.Unlock()
}

func (s *stream) setDelivered(seq uint64) {
	s.mu.Lock()
	s.deliveredTo, s.lastErr = seq, ""
	s.mu.Unlock()
}

func (s *stream) setErr(err error) {
	s.mu.Lock()
	s.lastErr = err.Error()
	s.mu.Unlock()
}

func (s *stream) stats() Stats {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := Stats{
		Sink: s.cfg.Name, Mode: s.cfg.Mode,
		Recorded: s.recorded.Load(), Dropped: s.dropped.Load(), Refused: s.refused.Load(),
		Delivered: s.delivered.Load(), Retried: s.retried.Load(),
		Spooled: s.spool.written() - s.deliveredTo, SpoolBytes: s.spool.size(), LastError: s.lastErr,
	}
	if !s.oldest.IsZero() {
		st.OldestUndelivered = s.now().Sub(s.oldest)
		st.OldestUndeliveredSeconds = st.OldestUndelivered.Seconds()
	}
	return st
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads retries over [d/2, d).
func jitter(d time.Duration) time.Duration {
	return d/2 + rand.N(d/2+1)
}
