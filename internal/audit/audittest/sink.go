package audittest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Stream makes the records of one sink's stream for sink tests: native
// encoding, sealed with a hash chain, sequence numbers from 1, each with
// an ID unique to the Stream. The zero Stream is not ready: use NewStream.
// It is not safe for concurrent use.
type Stream struct {
	prefix string
	chain  *audit.Chainer
	seq    uint64
	prev   string
	now    time.Time
}

// NewStream returns a Stream whose event IDs start with prefix.
func NewStream(prefix string) *Stream {
	return &Stream{prefix: prefix, chain: audit.NewChainer(nil), now: time.Date(2025, 3, 1, 12, 0, 0, 789, time.UTC)}
}

// Next returns the next n records of the stream.
func (s *Stream) Next(t testing.TB, n int) []audit.Record {
	t.Helper()
	out := make([]audit.Record, 0, n)
	for range n {
		s.seq++
		s.now = s.now.Add(1500 * time.Microsecond)
		e := audit.Event{
			Version: audit.SchemaVersion, ID: fmt.Sprintf("%s-%06d", s.prefix, s.seq), Time: s.now,
			Type: audit.TypeRequest, RequestID: fmt.Sprintf("req-%d", s.seq),
			Decision: &audit.Decision{Allowed: s.seq%2 == 0, Reasons: []string{"a reason with \"quotes\", a newline\n and ünïcode"}},
			Outcome:  &audit.Outcome{Status: 200},
		}
		data, err := audit.EncodeNative(e, audit.Chain{Seq: s.seq, Prev: s.prev})
		if err != nil {
			t.Fatal(err)
		}
		sealed, hash, err := s.chain.Seal(s.prev, data)
		if err != nil {
			t.Fatal(err)
		}
		s.prev = hash
		out = append(out, audit.Record{ID: e.ID, Seq: s.seq, Type: e.Type, Time: e.Time, Data: sealed})
	}
	return out
}

// Destination is what a sink delivers to, as a test controls it.
type Destination struct {
	// Stop takes the destination away: the server stops or fails every
	// request.
	Stop func(t *testing.T)
	// Start brings it back, keeping what it had received before Stop, as
	// a durable destination does.
	Start func(t *testing.T)
	// IDs returns the IDs of the records the destination holds (received,
	// and where the destination acknowledges, acknowledged), in any order,
	// duplicates included.
	IDs func(t *testing.T) []string
}

// CheckOutage tests a sink against a destination that goes away for a
// while and comes back: a batch is delivered; with the destination
// stopped, Deliver of the next batch fails each time and returns by its
// context's deadline; once the destination is back, the same batch is
// delivered again (retried as the spooler would, until Deliver returns
// nil), then one more batch. In the end the destination holds every record
// by ID, none lost, and nothing else; duplicates are allowed.
func CheckOutage(t *testing.T, s audit.Sink, d Destination) {
	t.Helper()
	stream := NewStream("outage")
	var sent []audit.Record
	deliver := func(batch []audit.Record) {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		defer cancel()
		if err := s.Deliver(ctx, batch); err != nil {
			t.Fatalf("Deliver with the destination up: %v", err)
		}
		sent = append(sent, batch...)
	}

	deliver(stream.Next(t, 3))

	d.Stop(t)
	batch := stream.Next(t, 4)
	for i := range 3 {
		const limit = 3 * time.Second
		ctx, cancel := context.WithTimeout(t.Context(), limit)
		start := time.Now()
		err := s.Deliver(ctx, batch)
		took := time.Since(start)
		cancel()
		if err == nil {
			t.Fatalf("Deliver %d with the destination stopped returned nil", i+1)
		}
		if took > limit+2*time.Second {
			t.Errorf("Deliver %d with the destination stopped took %s, past its context's deadline of %s", i+1, took, limit)
		}
		t.Logf("Deliver with the destination stopped: %v", err)
	}

	d.Start(t)
	deadline := time.Now().Add(30 * time.Second)
	for attempt := 1; ; attempt++ {
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		err := s.Deliver(ctx, batch)
		cancel()
		if err == nil {
			t.Logf("batch delivered on attempt %d after the destination came back", attempt)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Deliver still fails 30s after the destination came back: %v", err)
		}
		t.Logf("Deliver attempt %d after the destination came back: %v", attempt, err)
		time.Sleep(100 * time.Millisecond)
	}
	sent = append(sent, batch...)

	deliver(stream.Next(t, 2))

	var want []string
	for _, r := range sent {
		want = append(want, r.ID)
	}
	got := d.IDs(t)
	slices.Sort(got)
	got = slices.Compact(got)
	slices.Sort(want)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("IDs at the destination (-sent +held):\n%s", diff)
	}
}
