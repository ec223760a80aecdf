package audit

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
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
			if mark, _ := os.ReadFile(markPath); string(mark) != fmt.Sprintf("%020d\n", 31) {
				t.Errorf("mark after the restart %q", mark)
			}
		})
	}
}
