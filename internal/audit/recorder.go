package audit

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"
)

// Writer accepts audit events synchronously. Write must be safe for
// concurrent use and must return only once the event is handed off as
// durably as the writer can.
type Writer interface {
	Write(ctx context.Context, e Event) error
}

// Recorder stamps events and writes each to every sink. A Recorder with no
// sinks drops events. It is safe for concurrent use.
type Recorder struct {
	sinks []Writer
	now   func() time.Time
}

// NewRecorder returns a Recorder writing to sinks. now defaults to time.Now.
func NewRecorder(now func() time.Time, sinks ...Writer) *Recorder {
	if now == nil {
		now = time.Now
	}
	return &Recorder{sinks: sinks, now: now}
}

// Record fills in Version, ID and Time where they are zero and writes e to
// every sink. It returns the errors of the sinks that failed, joined; the
// other sinks still got the event.
func (r *Recorder) Record(ctx context.Context, e Event) error {
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
	for _, s := range r.sinks {
		if err := s.Write(ctx, e); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// JSONSink writes events as JSON lines, one event per line, to an io.Writer
// (stdout, a file). Writes are serialised, so lines never interleave.
type JSONSink struct {
	mu sync.Mutex
	w  io.Writer
}

// NewJSONSink returns a sink writing JSON lines to w.
func NewJSONSink(w io.Writer) *JSONSink { return &JSONSink{w: w} }

// Write encodes e as one line. A failed write is returned; the event is lost
// for this sink.
func (s *JSONSink) Write(_ context.Context, e Event) error {
	line, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("encode audit event: %w", err)
	}
	line = append(line, '\n')
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.w.Write(line); err != nil {
		return fmt.Errorf("write audit event: %w", err)
	}
	return nil
}
