package file

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

func recs(ids ...string) []audit.Record {
	var out []audit.Record
	for _, id := range ids {
		out = append(out, audit.Record{ID: id, Data: []byte(`{"id":"` + id + `"}`)})
	}
	return out
}

func TestFileSinkRotatesAndRetains(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(dir, "audit.log")
	// A rotated file from long ago, past the retention.
	old := filepath.Join(dir, "audit-20250101T000000.000Z.log")
	os.WriteFile(old, []byte("old\n"), 0o600)
	s, err := New(Config{Path: path, MaxBytes: 40, MaxAge: time.Hour, Retention: 24 * time.Hour, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Deliver(ctx, recs("a", "b")); err != nil { // 24 bytes
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, recs("c", "d")); err != nil { // would pass 40: rotate by size
		t.Fatal(err)
	}
	now = now.Add(2 * time.Hour)
	if err := s.Deliver(ctx, recs("e")); err != nil { // the file is 2h old: rotate by age
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "audit*.log"))
	var all bytes.Buffer
	for _, f := range files {
		b, _ := os.ReadFile(f)
		all.Write(b)
	}
	if len(files) != 3 {
		t.Errorf("files = %v, want the current one and two rotated ones (the old one deleted)", files)
	}
	for _, id := range []string{"a", "b", "c", "d", "e"} {
		if strings.Count(all.String(), `"id":"`+id+`"`) != 1 {
			t.Errorf("record %s is not in the files once:\n%s", id, all.String())
		}
	}
	if _, err := os.Stat(old); !os.IsNotExist(err) {
		t.Error("the rotated file past the retention was kept")
	}
	cur, _ := os.ReadFile(path)
	if string(cur) != `{"id":"e"}`+"\n" {
		t.Errorf("current file = %q", cur)
	}
	if info, _ := os.Stat(path); info.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", info.Mode())
	}
}

func TestWriterSink(t *testing.T) {
	var b bytes.Buffer
	if err := NewWriter(&b).Deliver(context.Background(), recs("a", "b")); err != nil {
		t.Fatal(err)
	}
	if b.String() != "{\"id\":\"a\"}\n{\"id\":\"b\"}\n" {
		t.Errorf("wrote %q", b.String())
	}
}
