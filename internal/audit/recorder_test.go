package audit

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// memSink keeps what it is given; while failing is set, it refuses.
type memSink struct {
	mu       sync.Mutex
	records  []Record
	failing  bool
	attempts int
}

func (m *memSink) Deliver(_ context.Context, batch []Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.attempts++
	if m.failing {
		return errors.New("sink down")
	}
	for _, r := range batch {
		r.Data = slices.Clone(r.Data)
		m.records = append(m.records, r)
	}
	return nil
}

func (m *memSink) Close() error { return nil }

func (m *memSink) setFailing(f bool) {
	m.mu.Lock()
	m.failing = f
	m.mu.Unlock()
}

func (m *memSink) got() []Record {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.records)
}

func newTestRecorder(t *testing.T, dir string, sc SinkConfig) *Recorder {
	t.Helper()
	sc.SpoolDir = filepath.Join(dir, sc.Name)
	if sc.RetryMin == 0 {
		sc.RetryMin, sc.RetryMax = time.Millisecond, 5*time.Millisecond
	}
	r, err := New(Config{Sinks: []SinkConfig{sc}})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func record(t *testing.T, r *Recorder, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if err := r.Record(context.Background(), Event{ID: id, Type: TypeRequest}); err != nil {
			t.Fatal(err)
		}
	}
}

func ids(n, from int) []string {
	var out []string
	for i := range n {
		out = append(out, fmt.Sprintf("e%04d", from+i))
	}
	return out
}

// checkStream checks that the records are exactly want, in order, numbered
// from 1 and chained.
func checkStream(t *testing.T, got []Record, want []string) {
	t.Helper()
	var gotIDs []string
	for _, r := range got {
		gotIDs = append(gotIDs, r.ID)
	}
	if !slices.Equal(gotIDs, want) {
		t.Fatalf("delivered %v, want %v", gotIDs, want)
	}
	c, prev := NewChainer(nil), ""
	for i, r := range got {
		if r.Seq != uint64(i+1) {
			t.Fatalf("record %d has seq %d", i, r.Seq)
		}
		h, err := c.Open(prev, r.Data)
		if err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
		prev = h
	}
}

func TestDeliveryInOrderThroughOutages(t *testing.T) {
	sink := &memSink{}
	r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "mem", Sink: sink, BatchSize: 7, SegmentBytes: 2 << 10})
	defer r.Close(time.Second)
	record(t, r, ids(20, 0)...)
	waitFor(t, "the first events", func() bool { return len(sink.got()) == 20 })

	// The sink goes away: events keep being recorded, not delivered.
	sink.setFailing(true)
	record(t, r, ids(30, 20)...)
	waitFor(t, "failed deliveries", func() bool { return r.Stats()[0].Retried >= 3 })
	if st := r.Stats()[0]; st.Spooled != 30 || st.LastError == "" || st.OldestUndelivered <= 0 {
		t.Errorf("stats during the outage = %+v", st)
	}
	// It comes back and receives every event once, in order.
	sink.setFailing(false)
	waitFor(t, "every event", func() bool { return len(sink.got()) == 50 })
	checkStream(t, sink.got(), ids(50, 0))
	st := r.Stats()[0]
	if st.Recorded != 50 || st.Delivered != 50 || st.Spooled != 0 || st.LastError != "" {
		t.Errorf("stats after = %+v", st)
	}
	// Delivered segments are gone: only the one being written remains.
	if segs, _ := filepath.Glob(filepath.Join(r.streams[0].cfg.SpoolDir, "*.log")); len(segs) != 1 {
		t.Errorf("%d segments left after delivery: %v", len(segs), segs)
	}
}

// TestRestartDeliversWhatWasSpooled: what a stopped jitproxy left in the
// spool is delivered by the next, and the stream's numbers and chain go on.
func TestRestartDeliversWhatWasSpooled(t *testing.T) {
	dir := t.TempDir()
	down := &memSink{failing: true}
	r := newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: down})
	record(t, r, ids(10, 0)...)
	r.Close(0)

	up := &memSink{}
	r = newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: up})
	defer r.Close(time.Second)
	record(t, r, ids(5, 10)...)
	waitFor(t, "every event", func() bool { return len(up.got()) == 15 })
	checkStream(t, up.got(), ids(15, 0))
}

// TestTornRecordIsCut: a record cut short by a crash of the machine is
// dropped from the spool at start, and the stream goes on after the last
// whole record.
func TestTornRecordIsCut(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: &memSink{failing: true}})
	record(t, r, ids(3, 0)...)
	r.Close(0)
	segs, _ := filepath.Glob(filepath.Join(dir, "s", "*.log"))
	f, err := os.OpenFile(segs[0], os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(`{"seq":4,"id":"torn","ty`)
	f.Close()

	up := &memSink{}
	r = newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: up})
	defer r.Close(time.Second)
	record(t, r, "after")
	waitFor(t, "every event", func() bool { return len(up.got()) == 4 })
	checkStream(t, up.got(), append(ids(3, 0), "after"))
}

func TestSpoolFull(t *testing.T) {
	for _, mode := range []Mode{Enforced, BestEffort} {
		t.Run(string(mode), func(t *testing.T) {
			sink := &memSink{failing: true}
			r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink, Mode: mode, MaxSpoolBytes: 2000})
			defer r.Close(0)
			var errs int
			for i := range 20 {
				if err := r.Record(context.Background(), Event{ID: fmt.Sprint(i), Type: TypeRequest}); err != nil {
					if !errors.Is(err, ErrNotRecorded) || !strings.Contains(err.Error(), "spool is full") {
						t.Fatalf("Record() = %v", err)
					}
					errs++
				}
			}
			st := r.Stats()[0]
			switch mode {
			case Enforced:
				if errs == 0 || st.Refused != uint64(errs) || st.Dropped != 0 {
					t.Errorf("enforced: %d errors, stats %+v", errs, st)
				}
			case BestEffort:
				if errs != 0 || st.Dropped == 0 || st.Recorded+st.Dropped != 20 {
					t.Errorf("best_effort: %d errors, stats %+v", errs, st)
				}
			}
		})
	}
}

// TestUnwritableSpool: an enforced sink whose spool cannot be written (here
// its directory is replaced by a file, which stops root too) fails Record.
func TestUnwritableSpool(t *testing.T) {
	dir := t.TempDir()
	// A sink that takes nothing: no delivered mark is written meanwhile.
	r := newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: &memSink{failing: true}, SegmentBytes: 100})
	defer r.Close(0)
	record(t, r, "first")
	spoolDir := filepath.Join(dir, "s")
	if err := os.RemoveAll(spoolDir); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spoolDir, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	err := r.Record(context.Background(), Event{Type: TypeRequest})
	if !errors.Is(err, ErrNotRecorded) {
		t.Errorf("Record() on an unwritable spool = %v, want ErrNotRecorded", err)
	}
}

func TestFilterAndStamps(t *testing.T) {
	all, grants := &memSink{}, &memSink{}
	dir := t.TempDir()
	r, err := New(Config{Sinks: []SinkConfig{
		{Name: "all", Sink: all, SpoolDir: filepath.Join(dir, "all")},
		{Name: "grants", Sink: grants, SpoolDir: filepath.Join(dir, "grants"), Types: []string{TypeGrantActivated}},
	}, Now: func() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close(time.Second)
	r.Record(context.Background(), Event{Type: TypeRequest})
	r.Record(context.Background(), Event{Type: TypeGrantActivated})
	waitFor(t, "delivery", func() bool { return len(all.got()) == 2 && len(grants.got()) == 1 })
	g := grants.got()[0]
	if g.Type != TypeGrantActivated || g.Seq != 1 || len(g.ID) != 32 || !g.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("record = %+v", g)
	}
	if !strings.Contains(string(g.Data), `"version":"jitproxy.audit/v1"`) {
		t.Errorf("data = %s", g.Data)
	}
}

// TestSpoolFullRecovers: a spool that filled while its sink was away takes
// events again once they are delivered, though they share a segment with
// the new ones.
func TestSpoolFullRecovers(t *testing.T) {
	sink := &memSink{failing: true}
	r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink, MaxSpoolBytes: 2000})
	defer r.Close(0)
	var full bool
	for i := 0; i < 50 && !full; i++ {
		full = r.Record(context.Background(), Event{Type: TypeRequest}) != nil
	}
	if !full {
		t.Fatal("the spool never filled")
	}
	sink.setFailing(false)
	waitFor(t, "the spool to drain", func() bool { return r.Stats()[0].Spooled == 0 })
	// As many as filled it fit again (four records of this size).
	for i := range 3 {
		if err := r.Record(context.Background(), Event{Type: TypeRequest}); err != nil {
			t.Fatalf("Record() %d after the spool drained = %v", i, err)
		}
	}
}

// discardSink takes everything at once.
type discardSink struct{}

func (discardSink) Deliver(context.Context, []Record) error { return nil }
func (discardSink) Close() error                            { return nil }

// benchDecided is the request.decided event the benchmarks record.
var benchDecided = Event{
	Type: TypeRequestDecided, RequestID: "0123456789abcdef",
	Decision: &Decision{Allowed: true, Reasons: []string{"permitted by grant g-abcdefghijklmnop"}},
	Grant:    &Grant{ID: "g-abcdefghijklmnop", Policy: "pod-reader", Version: "a1b2c3d4e5f6", Namespace: "demo", Approvers: []string{"sre-1"}},
}

// benchRecorder is a Recorder with one enforced sink that discards what
// it is delivered, spooled in a temporary directory with the fsync policy
// sync; it is closed when the benchmark ends.
func benchRecorder(b *testing.B, sync SyncPolicy) *Recorder {
	b.Helper()
	r, err := New(Config{Sinks: []SinkConfig{{Name: "s", Sink: discardSink{}, SpoolDir: b.TempDir(), Sync: sync}}})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { r.Close(time.Second) })
	return r
}

// BenchmarkRecord measures what recording a request's decision adds to the
// request: encoding, chaining and one write to an enforced sink's spool,
// with the default fsync policy (group commit every 10ms) and with an
// fsync per event.
func BenchmarkRecord(b *testing.B) {
	e := benchDecided
	for _, sync := range []SyncPolicy{SyncInterval, SyncAlways} {
		b.Run(string(sync), func(b *testing.B) {
			r := benchRecorder(b, sync)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := r.Record(ctx, e); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkRecordParallel is BenchmarkRecord from 16 goroutines at once,
// as concurrent requests record: what an fsync per event costs when
// events can share one, and what recording costs while the group commit
// runs.
func BenchmarkRecordParallel(b *testing.B) {
	e := benchDecided
	for _, sync := range []SyncPolicy{SyncInterval, SyncAlways} {
		b.Run(string(sync), func(b *testing.B) {
			r := benchRecorder(b, sync)
			ctx := context.Background()
			b.ReportAllocs()
			b.SetParallelism(8)
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if err := r.Record(ctx, e); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// TestDeletedSpool: a spool whose directory is removed under a running
// recorder would take records into a file that no longer has a name, lost
// at the next start. The next fsync finds it, and an enforced sink refuses
// from then on.
func TestDeletedSpool(t *testing.T) {
	dir := t.TempDir()
	r := newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: &memSink{failing: true}})
	defer r.Close(0)
	record(t, r, "before")
	if err := os.RemoveAll(filepath.Join(dir, "s")); err != nil {
		t.Fatal(err)
	}
	var err error
	waitFor(t, "a refusal", func() bool {
		err = r.Record(context.Background(), Event{Type: TypeRequest})
		return err != nil
	})
	if !errors.Is(err, ErrNotRecorded) || !strings.Contains(err.Error(), "was deleted") {
		t.Errorf("Record() = %v", err)
	}
}

// TestDeliveredAsEncoded: a record reaches its sink with the bytes its
// encoder wrote, its hash filled in, whatever they hold: an encoder that
// does not escape <, > and & (as OCSF's does not) keeps its chain. The
// spool used to re-encode the data through json.Marshal, which escaped
// them after the hash was computed.
func TestDeliveredAsEncoded(t *testing.T) {
	enc := func(dst []byte, e Event, c Chain) ([]byte, error) {
		return fmt.Appendf(dst, `{"id":%q,"category":"Identity & Access <Management>","seq":%d,"prev_hash":%q,"hash":""}`, e.ID, c.Seq, c.Prev), nil
	}
	sink := &memSink{}
	r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink, Encoder: enc})
	defer r.Close(time.Second)
	record(t, r, "a", "b")
	waitFor(t, "delivery", func() bool { return len(sink.got()) == 2 })
	got := sink.got()
	checkStream(t, got, []string{"a", "b"})
	for _, rec := range got {
		if !strings.Contains(string(rec.Data), `"Identity & Access <Management>"`) {
			t.Errorf("delivered %s, not as encoded", rec.Data)
		}
	}
}

// TestEncoderMistakes: an encoding without the hash placeholder, or with
// a newline (which would split its line in the spool), is not recorded.
func TestEncoderMistakes(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{name: "no placeholder", data: `{"id":"x"}`, want: "no hash placeholder"},
		{name: "newline", data: "{\"id\":\"x\",\n\"hash\":\"\"}", want: "holds a newline"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			enc := func(dst []byte, _ Event, _ Chain) ([]byte, error) { return append(dst, tt.data...), nil }
			r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: &memSink{}, Encoder: enc})
			defer r.Close(0)
			err := r.Record(context.Background(), Event{Type: TypeRequest})
			if !errors.Is(err, ErrNotRecorded) || !strings.Contains(fmt.Sprint(err), tt.want) {
				t.Errorf("Record() = %v, want ErrNotRecorded: ...%s", err, tt.want)
			}
		})
	}
}

// gateSink records the size of each batch, each Deliver waiting for a
// value on gate first.
type gateSink struct {
	gate  chan struct{}
	mu    sync.Mutex
	sizes []int
}

func (g *gateSink) Deliver(_ context.Context, batch []Record) error {
	<-g.gate
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sizes = append(g.sizes, len(batch))
	return nil
}

func (*gateSink) Close() error { return nil }

func (g *gateSink) got() []int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return slices.Clone(g.sizes)
}

// TestDeliveriesGather: a record after a quiet spell is delivered at once;
// records spooled within DeliverEvery of the last delivery wait for the
// rest of it and go in one batch, unless a whole batch is waiting, which
// goes at once.
func TestDeliveriesGather(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		sink := &gateSink{gate: make(chan struct{})}
		r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink, BatchSize: 4, DeliverEvery: 10 * time.Millisecond})
		defer r.Close(time.Second)
		start := time.Now()
		record(t, r, "e1")
		synctest.Wait() // e1's delivery is under way: Deliver waits at the gate
		// Spooled meanwhile: after e1, two whole batches go at once, and
		// the last record waits.
		record(t, r, ids(9, 2)...)
		for range 3 {
			sink.gate <- struct{}{}
		}
		synctest.Wait()
		if got, waited := sink.got(), time.Since(start); !slices.Equal(got, []int{1, 4, 4}) || waited != 0 {
			t.Fatalf("batches %v after %v, want [1 4 4] at once", got, waited)
		}
		record(t, r, "late")
		sink.gate <- struct{}{}
		synctest.Wait()
		if got, waited := sink.got(), time.Since(start); !slices.Equal(got, []int{1, 4, 4, 2}) || waited != 10*time.Millisecond {
			t.Fatalf("batches %v after %v, want [1 4 4 2] after 10ms", got, waited)
		}
	})
}
