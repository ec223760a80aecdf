package audit

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
)

// spoolReader reads a spool's records in order from a sequence number on,
// following the segments as they are written. It is used by one goroutine.
type spoolReader struct {
	s       *spool
	next    uint64 // the sequence number of the next record to return
	f       *os.File
	r       *bufio.Reader
	segment uint64 // the first sequence number of the open segment
	partial []byte // a line read without its end yet
}

func newSpoolReader(s *spool, from uint64) *spoolReader {
	return &spoolReader{s: s, next: from}
}

// read returns up to limit records from the next one on; none when nothing
// new was written. The records' data share one buffer per call, which
// nothing else writes to, so a sink may keep them.
func (r *spoolReader) read(limit int) ([]spoolLine, error) {
	written := r.s.written()
	if r.next > written {
		return nil, nil
	}
	out := make([]spoolLine, 0, min(uint64(limit), written-r.next+1))
	var data []byte
	for len(out) < limit && r.next <= written {
		if r.f == nil || !r.inOpenSegment() {
			if err := r.open(); err != nil {
				return out, err
			}
		}
		line, err := r.r.ReadSlice('\n')
		if err == bufio.ErrBufferFull || err == io.EOF || len(r.partial) > 0 {
			// A line longer than the buffer, or not all written yet when
			// read: it is put together in partial.
			r.partial = append(r.partial, line...)
			line = r.partial
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == io.EOF {
			// The rest of this segment is not written yet, or the
			// record is in the next segment.
			if next, _ := r.s.segmentAfter(r.segment); next > 0 && len(r.partial) == 0 {
				r.close()
				continue
			}
			return out, nil
		}
		if err != nil {
			return out, err
		}
		l, ok := scanSpoolLine(line[:len(line)-1])
		if !ok {
			// A line scanSpoolLine does not read (an ID with escapes,
			// written by json.Marshal of an earlier version).
			if err := json.Unmarshal(line, &l); err != nil {
				return out, fmt.Errorf("audit spool %s: a record that is not JSON after %d", r.s.dir, r.next-1)
			}
		}
		l.size = int64(len(line))
		if l.Seq < r.next {
			// Delivered before: its bytes are not pending.
			r.s.release(l.Seq, l.size)
			r.partial = r.partial[:0]
			continue
		}
		if l.Seq != r.next {
			return out, fmt.Errorf("audit spool %s: record %d where %d was expected", r.s.dir, l.Seq, r.next)
		}
		// The line is the reader's buffer, read over by the next line.
		if data == nil {
			// Room for the batch if its records are the size of the
			// first, up to 1 MiB.
			data = make([]byte, 0, max(len(l.Data), min(len(l.Data)*cap(out), 1<<20)))
		}
		start := len(data)
		data = append(data, l.Data...)
		l.Data = data[start:len(data):len(data)]
		r.partial = r.partial[:0]
		r.next++
		out = append(out, l)
	}
	return out, nil
}

// inOpenSegment reports whether the next record can be in the open segment.
func (r *spoolReader) inOpenSegment() bool {
	next, found := r.s.segmentAfter(r.segment)
	return found && (next == 0 || next > r.next)
}

// open opens the segment that holds the next record.
func (r *spoolReader) open() error {
	r.close()
	segs := r.s.segmentList()
	i, found := slices.BinarySearch(segs, r.next)
	if !found {
		i--
	}
	if i < 0 {
		return fmt.Errorf("audit spool %s: no segment holds record %d", r.s.dir, r.next)
	}
	f, err := os.Open(r.s.segmentPath(segs[i]))
	if err != nil {
		return err
	}
	r.f, r.r, r.segment, r.partial = f, bufio.NewReaderSize(f, 64<<10), segs[i], r.partial[:0]
	return nil
}

func (r *spoolReader) close() {
	if r.f != nil {
		r.f.Close()
		r.f, r.r = nil, nil
	}
}
