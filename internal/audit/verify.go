package audit

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// VerifyResult describes a stream that verified.
type VerifyResult struct {
	// Records is the number of records read.
	Records int
	// FirstSeq and LastSeq are the sequence numbers of the first and last
	// record, and LastHash the last record's hash: compare them with the
	// sink's counters or a later copy to see that nothing was cut off the
	// end, which a chain alone cannot show.
	FirstSeq, LastSeq uint64
	LastHash          string
}

// BreakError is the first place where a stream is not what its sink wrote.
type BreakError struct {
	Line int    // 1-based line of the input
	Seq  uint64 // the record's sequence number, 0 when unreadable
	What string
}

func (e *BreakError) Error() string {
	if e.Seq > 0 {
		return fmt.Sprintf("line %d (seq %d): %s", e.Line, e.Seq, e.What)
	}
	return fmt.Sprintf("line %d: %s", e.Line, e.What)
}

// Verify reads one sink's records, one per line (in the native or the
// OCSF format), and checks their sequence numbers and hash chain with key
// (nil for a plain SHA-256 chain). A stream may start anywhere (a rotated
// file): its first record's prev_hash is taken as given, unless it is
// record 1, which follows nothing. It returns a *BreakError for the first
// edited, removed, reordered or torn record.
func Verify(r io.Reader, key []byte) (VerifyResult, error) {
	c := NewChainer(key)
	br := bufio.NewReader(r)
	var res VerifyResult
	var prev string
	for line := 1; ; line++ {
		raw, err := br.ReadBytes('\n')
		if len(raw) == 0 && err == io.EOF {
			return res, nil
		}
		if err != nil && err != io.EOF {
			return res, err
		}
		if !bytes.HasSuffix(raw, []byte("\n")) {
			return res, &BreakError{Line: line, What: "the record is cut short (no end of line): the stream was truncated"}
		}
		raw = bytes.TrimSuffix(raw, []byte("\n"))
		seq, prevField, ok := chainFields(raw)
		if !ok {
			return res, &BreakError{Line: line, What: "not a record with a sequence number and a previous hash"}
		}
		if res.Records == 0 {
			res.FirstSeq = seq
			prev = prevField
			if seq == 1 && prevField != "" {
				return res, &BreakError{Line: line, Seq: seq, What: "record 1 names a previous record"}
			}
		} else if seq != res.LastSeq+1 {
			what := fmt.Sprintf("follows record %d: ", res.LastSeq)
			if seq <= res.LastSeq {
				what += "records are out of order or repeated"
			} else {
				what += fmt.Sprintf("%d record(s) are missing here (removed, or moved elsewhere)", seq-res.LastSeq-1)
			}
			return res, &BreakError{Line: line, Seq: seq, What: what}
		}
		if prevField != prev {
			return res, &BreakError{Line: line, Seq: seq, What: "its previous hash is not the previous record's hash"}
		}
		h, err := c.Open(prev, raw)
		if err != nil {
			return res, &BreakError{Line: line, Seq: seq, What: "edited: " + err.Error()}
		}
		res.Records++
		res.LastSeq, res.LastHash, prev = seq, h, h
	}
}

// chainFields reads a record's sequence number and previous hash: seq and
// prev_hash at the top level (native), or metadata.sequence and
// unmapped.prev_hash (OCSF).
func chainFields(raw []byte) (uint64, string, bool) {
	var r struct {
		Seq      *uint64 `json:"seq"`
		PrevHash *string `json:"prev_hash"`
		Metadata struct {
			Sequence *uint64 `json:"sequence"`
		} `json:"metadata"`
		Unmapped struct {
			PrevHash *string `json:"prev_hash"`
		} `json:"unmapped"`
	}
	if json.Unmarshal(raw, &r) != nil {
		return 0, "", false
	}
	switch {
	case r.Seq != nil && r.PrevHash != nil:
		return *r.Seq, *r.PrevHash, true
	case r.Metadata.Sequence != nil && r.Unmapped.PrevHash != nil:
		return *r.Metadata.Sequence, *r.Unmapped.PrevHash, true
	}
	return 0, "", false
}
