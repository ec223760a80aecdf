package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestDeliveredMark: the delivered mark is rewritten in place with a fixed
// width, over a mark of an earlier version too; a mark older than the
// first segment (the mark is not fsynced: a machine crash can keep an old
// one while the segments it let go of are deleted), or one that holds no
// number, makes the next start deliver from the first segment on, again:
// at least once, never stuck.
func TestDeliveredMark(t *testing.T) {
	mark30 := fmt.Sprintf("%020d\n", 30)
	after := func(seq uint64) func(uint64) uint64 { return func(uint64) uint64 { return seq + 1 } }
	firstSegment := func(first uint64) uint64 { return first }
	tests := []struct {
		name string
		mark string // written over the mark before the restart
		// from is the first record delivered after the restart, given
		// the first segment's first record.
		from func(first uint64) uint64
	}{
		{name: "as written", mark: mark30, from: after(30)},
		{name: "an earlier version's", mark: "28\n", from: after(28)},
		{name: "older than the first segment", mark: "1\n", from: firstSegment},
		{name: "empty", mark: "", from: firstSegment},
		{name: "zeros", mark: "\x00\x00\x00\x00", from: firstSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			sink := &memSink{}
			r := newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: sink, BatchSize: 5, SegmentBytes: 1 << 10})
			record(t, r, ids(30, 0)...)
			waitFor(t, "delivery", func() bool { return len(sink.got()) == 30 })
			r.Close(time.Second)
			markPath := filepath.Join(dir, "s", deliveredFile)
			mark, err := os.ReadFile(markPath)
			if err != nil {
				t.Fatal(err)
			}
			if string(mark) != mark30 {
				t.Fatalf("mark %q, want %q", mark, mark30)
			}
			segs, _ := filepath.Glob(filepath.Join(dir, "s", "*.log"))
			var first uint64
			fmt.Sscanf(filepath.Base(segs[0]), "%d.log", &first)
			if len(segs) != 1 || first <= 2 {
				t.Fatalf("segments %v: want one, after record 2", segs)
			}
			if err := os.WriteFile(markPath, []byte(tt.mark), 0o600); err != nil {
				t.Fatal(err)
			}
			from := tt.from(first)
			again := &memSink{}
			r = newTestRecorder(t, dir, SinkConfig{Name: "s", Sink: again, BatchSize: 5, SegmentBytes: 1 << 10})
			defer r.Close(time.Second)
			record(t, r, "new")
			want := append(ids(int(31-from), int(from-1)), "new")
			waitFor(t, "delivery after the restart", func() bool { return len(again.got()) == len(want) })
			got := again.got()
			for i, rec := range got {
				if rec.ID != want[i] || rec.Seq != from+uint64(i) {
					t.Fatalf("delivered %d: %s (seq %d), want %s (seq %d)", i, rec.ID, rec.Seq, want[i], from+uint64(i))
				}
			}
			// The stream writes the mark after the sink took the records:
			// closed, it has written it.
			r.Close(time.Second)
			if mark, _ := os.ReadFile(markPath); string(mark) != fmt.Sprintf("%020d\n", 31) {
				t.Errorf("mark after the restart %q", mark)
			}
		})
	}
}

// TestSpoolRecords: what the reader returns is what was recorded, for
// records the fast scan reads, records it leaves to json.Unmarshal (an ID
// or type with escapes), and a record longer than the reader's buffer.
func TestSpoolRecords(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 16, 47, 4, 123456789, time.UTC)
	tests := []struct {
		name  string
		event Event
	}{
		{name: "plain", event: Event{ID: "0123456789abcdef0123456789abcdef", Type: TypeRequest, Time: t0}},
		{name: "type not jitproxy's", event: Event{ID: "x", Type: "custom.type", Time: t0}},
		{name: "escapes", event: Event{ID: `<"id">`, Type: "a\\b\u2028", Time: t0, RequestID: "\xff"}},
		{name: "time in a zone", event: Event{ID: "z", Type: TypeRequest, Time: t0.In(time.FixedZone("", -7*3600))}},
		{name: "longer than the reader's buffer", event: Event{ID: "long", Type: TypePolicyLoaded, Time: t0, Outcome: &Outcome{Error: strings.Repeat("<x>", 50<<10)}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sink := &memSink{}
			r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink})
			defer r.Close(time.Second)
			// Twice: the second follows the first in the same segment.
			for range 2 {
				if err := r.Record(context.Background(), tt.event); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "delivery", func() bool { return len(sink.got()) == 2 })
			e := tt.event
			e.Version = SchemaVersion // as Record stamps it
			want, err := EncodeNative(e, Chain{Seq: 2, Prev: mustOpen(t, sink.got()[0].Data)})
			if err != nil {
				t.Fatal(err)
			}
			got := sink.got()[1]
			sealed, _, _ := NewChainer(nil).Seal(mustOpen(t, sink.got()[0].Data), want)
			if diff := cmp.Diff(Record{ID: tt.event.ID, Seq: 2, Type: tt.event.Type, Time: tt.event.Time, Data: sealed}, got); diff != "" {
				t.Errorf("delivered (-want +got):\n%s", diff)
			}
		})
	}
}

// mustOpen returns the hash of record 1.
func mustOpen(t *testing.T, data []byte) string {
	t.Helper()
	h, err := NewChainer(nil).Open("", data)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzSpoolLine: a spool line as appendSpoolLine writes it is what
// json.Marshal of a spoolLine wrote before (for data that needs no
// re-encoding, as the native format's), and scanSpoolLine reads it, and
// the old writer's lines, as json.Unmarshal does, or leaves them to it.
func FuzzSpoolLine(f *testing.F) {
	f.Add(uint64(1), "0123456789abcdef", "request", int64(1795970847123456789), "alice")
	f.Add(uint64(18446744073709551615), `<"\u2028">`, "a\\b", int64(-1), "\xff\x00")
	f.Fuzz(func(t *testing.T, seq uint64, id, typ string, nanos int64, value string) {
		at := time.Unix(0, nanos).UTC()
		data := append(AppendJSONString([]byte(`{"v":`), value, true), `,"hash":""}`...)
		i := bytes.LastIndex(data, hashPlaceholder)
		sum := []byte(strings.Repeat("ab", 32))
		line, err := appendSpoolLine(nil, seq, id, typ, at, data, i, sum)
		if err != nil {
			t.Fatal(err)
		}
		sealed := appendSealed(nil, data, i, sum)
		old, err := json.Marshal(spoolLine{Seq: seq, ID: id, Type: typ, Time: at, Hash: string(sum), Data: sealed})
		if err != nil {
			t.Fatal(err)
		}
		if string(line) != string(old)+"\n" {
			t.Fatalf("appendSpoolLine wrote\n%s\njson.Marshal\n%s", line, old)
		}
		var want spoolLine
		if err := json.Unmarshal(line, &want); err != nil {
			t.Fatal(err)
		}
		want.Hash = ""
		got, ok := scanSpoolLine(line[:len(line)-1])
		if head := line[:bytes.Index(line, []byte(`,"hash":`))]; ok == bytes.ContainsRune(head, '\\') {
			t.Errorf("scanSpoolLine(%s): ok %v, want it to read every line without escapes before the hash", line, ok)
		}
		if ok {
			if diff := cmp.Diff(want, got, cmp.AllowUnexported(spoolLine{})); diff != "" {
				t.Errorf("scanSpoolLine(%s) (-json.Unmarshal +scanSpoolLine):\n%s", line, diff)
			}
		}
	})
}

// TestConcurrentRecordsAndSyncs: records from many goroutines while
// fsyncs run without the spool's lock and segments roll over under them:
// every record is recorded, delivered once, in order, chained.
func TestConcurrentRecordsAndSyncs(t *testing.T) {
	for _, policy := range []SyncPolicy{SyncInterval, SyncAlways} {
		t.Run(string(policy), func(t *testing.T) {
			sink := &memSink{}
			r := newTestRecorder(t, t.TempDir(), SinkConfig{Name: "s", Sink: sink, Sync: policy, SyncEvery: time.Millisecond, SegmentBytes: 4 << 10})
			defer r.Close(time.Second)
			var wg sync.WaitGroup
			for g := range 8 {
				wg.Go(func() {
					for i := range 25 {
						if err := r.Record(context.Background(), Event{ID: fmt.Sprintf("g%d-%02d", g, i), Type: TypeRequest}); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			waitFor(t, "delivery", func() bool { return len(sink.got()) == 200 })
			got := sink.got()
			seen := map[string]bool{}
			var ids []string
			for _, rec := range got {
				if seen[rec.ID] {
					t.Fatalf("%s delivered twice", rec.ID)
				}
				seen[rec.ID] = true
				ids = append(ids, rec.ID)
			}
			checkStream(t, got, ids)
		})
	}
}

// TestSyncAfterTheSegmentWentDelivered: a segment that rolls over during
// an fsync, and then goes because its records were delivered, is not
// reported lost (it was, under load: "the audit spool segment ... was
// deleted", which fails every later record).
func TestSyncAfterTheSegmentWentDelivered(t *testing.T) {
	s, err := openSpool(t.TempDir(), 1<<20, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	line := func(b []byte, seq uint64, prev string) ([]byte, string, error) {
		return append(b, "record\n"...), "hash", nil
	}
	seq, err := s.append(line)
	if err != nil {
		t.Fatal(err)
	}
	testHookSynced = func() {
		testHookSynced = nil
		s.mu.Lock()
		err := s.roll()
		s.mu.Unlock()
		if err != nil {
			t.Error(err)
		}
		if err := s.markDelivered(seq); err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(func() { testHookSynced = nil })
	if err := s.sync(seq); err != nil {
		t.Fatalf("sync: %v", err)
	}
	if _, err := s.append(line); err != nil {
		t.Errorf("the next record: %v", err)
	}
}
