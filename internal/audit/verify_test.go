package audit

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// stream returns n sealed native records, one per line.
func sealedLines(t *testing.T, n int, key []byte) [][]byte {
	t.Helper()
	c, prev := NewChainer(key), ""
	var out [][]byte
	for i := range n {
		data, err := EncodeNative(Event{Version: SchemaVersion, ID: fmt.Sprintf("e%d", i), Type: TypeRequest, Time: time.Unix(int64(i), 0).UTC()}, Chain{Seq: uint64(i + 1), Prev: prev})
		if err != nil {
			t.Fatal(err)
		}
		s, h, err := c.Seal(prev, data)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, s)
		prev = h
	}
	return out
}

func join(lines [][]byte) []byte {
	var b bytes.Buffer
	for _, l := range lines {
		b.Write(l)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

func TestVerify(t *testing.T) {
	key := []byte("0123456789abcdef")
	good := sealedLines(t, 5, key)
	tests := []struct {
		name     string
		input    []byte
		key      []byte
		wantLine int
		wantWhat string // "" for a stream that verifies
	}{
		{name: "intact", input: join(good), key: key},
		{name: "intact from the middle (a rotated file)", input: join(good[2:]), key: key},
		{name: "edited", key: key, wantLine: 3, wantWhat: "edited",
			input: join([][]byte{good[0], good[1], bytes.Replace(good[2], []byte(`"e2"`), []byte(`"e9"`), 1), good[3]})},
		{name: "deleted", key: key, wantLine: 3, wantWhat: "1 record(s) are missing",
			input: join([][]byte{good[0], good[1], good[3], good[4]})},
		{name: "reordered", key: key, wantLine: 2, wantWhat: "missing here (removed, or moved elsewhere)",
			input: join([][]byte{good[0], good[2], good[1], good[3]})},
		{name: "repeated", key: key, wantLine: 3, wantWhat: "out of order or repeated",
			input: join([][]byte{good[0], good[1], good[1], good[2]})},
		{name: "truncated", key: key, wantLine: 5, wantWhat: "cut short",
			input: append(join(good[:4]), good[4][:len(good[4])/2]...)},
		{name: "the wrong key", key: []byte("another key, 16+"), wantLine: 1, wantWhat: "edited",
			input: join(good)},
		{name: "renumbered after a deletion", key: key, wantLine: 3, wantWhat: "previous hash",
			input: join([][]byte{good[0], good[1], bytes.Replace(good[3], []byte(`"seq":4`), []byte(`"seq":3`), 1)})},
		{name: "not a record", key: key, wantLine: 1, wantWhat: "not a record", input: []byte("hello\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := Verify(bytes.NewReader(tt.input), tt.key)
			if tt.wantWhat == "" {
				if err != nil {
					t.Fatalf("Verify() = %v", err)
				}
				if res.LastSeq != 5 || res.LastHash == "" {
					t.Errorf("result = %+v", res)
				}
				return
			}
			var be *BreakError
			if !errors.As(err, &be) || be.Line != tt.wantLine || !strings.Contains(be.What, tt.wantWhat) {
				t.Errorf("Verify() = %v, want a break at line %d saying %q", err, tt.wantLine, tt.wantWhat)
			}
		})
	}
}
