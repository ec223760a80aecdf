package audit

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestChainSealAndOpen(t *testing.T) {
	for _, key := range [][]byte{nil, []byte("k")} {
		c := NewChainer(key)
		prev := ""
		var sealed [][]byte
		for i := range 3 {
			data, err := EncodeNative(Event{Version: SchemaVersion, ID: "e" + string(rune('0'+i)), Type: TypeRequest, Time: time.Unix(0, 0).UTC()}, Chain{Seq: uint64(i + 1), Prev: prev})
			if err != nil {
				t.Fatal(err)
			}
			s, h, err := c.Seal(prev, data)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(string(s), `"hash":"`+h+`"}`) {
				t.Fatalf("sealed record %s does not end with its hash", s)
			}
			sealed = append(sealed, s)
			prev = h
		}
		prev = ""
		for i, s := range sealed {
			h, err := c.Open(prev, s)
			if err != nil {
				t.Fatalf("Open(record %d) = %v", i, err)
			}
			prev = h
		}
		// An edit, a reordering and a wrong key are found.
		edited := bytes.Replace(sealed[1], []byte(`"e1"`), []byte(`"eX"`), 1)
		first, _ := c.Open("", sealed[0])
		if _, err := c.Open(first, edited); err == nil {
			t.Error("an edited record opened")
		}
		if _, err := c.Open("", sealed[1]); err == nil {
			t.Error("a record opened after the wrong previous hash")
		}
		other := NewChainer([]byte("other"))
		if _, err := other.Open("", sealed[0]); err == nil {
			t.Error("a record opened with another key")
		}
	}
}
