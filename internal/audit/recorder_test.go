package audit

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/jitproxy/jitproxy/internal/access"
)

type failingSink struct{}

func (failingSink) Write(context.Context, Event) error { return errors.New("disk full") }

func TestRecorderStampsAndFansOut(t *testing.T) {
	now := time.Date(2026, 11, 26, 8, 0, 0, 0, time.UTC)
	var a, b bytes.Buffer
	r := NewRecorder(func() time.Time { return now }, NewJSONSink(&a), failingSink{}, NewJSONSink(&b))
	err := r.Record(context.Background(), Event{Type: TypeRequest, Caller: &access.Caller{Session: "s1", User: "alice"}})
	if err == nil {
		t.Fatal("Record() = nil, want the failing sink's error")
	}
	for name, buf := range map[string]*bytes.Buffer{"first": &a, "last": &b} {
		var got Event
		if err := json.Unmarshal(buf.Bytes(), &got); err != nil {
			t.Fatalf("%s sink: %v", name, err)
		}
		want := Event{Version: SchemaVersion, Time: now, Type: TypeRequest, Caller: &access.Caller{Session: "s1", User: "alice"}}
		if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(Event{}, "ID")); diff != "" {
			t.Errorf("%s sink event (-want +got):\n%s", name, diff)
		}
		if len(got.ID) != 32 {
			t.Errorf("%s sink: ID %q is not 16 random bytes in hex", name, got.ID)
		}
	}
}

func TestJSONSinkLinesNeverInterleave(t *testing.T) {
	var buf bytes.Buffer
	r := NewRecorder(nil, NewJSONSink(&buf))
	var wg sync.WaitGroup
	for i := range 50 {
		wg.Go(func() {
			r.Record(context.Background(), Event{Type: TypeRequest, RequestID: string(rune('a' + i%26))})
		})
	}
	wg.Wait()
	sc := bufio.NewScanner(&buf)
	lines := 0
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("line %d is not one JSON event: %v", lines, err)
		}
		lines++
	}
	if lines != 50 {
		t.Errorf("got %d lines, want 50", lines)
	}
}
