package audit

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The spool of one sink is a directory of segment files, each named by the
// sequence number of its first record (%020d.log), holding one record per
// line as a spoolLine. Records are appended with one write(2) each, so a
// record is in the operating system's hands, and survives a kill of
// jitproxy, once Append returns; a crash of the machine loses what was not
// yet fsynced (see SyncPolicy). The file "delivered" holds the sequence
// number of the last record the sink acknowledged, as 20 digits and a
// newline, rewritten in place; segments wholly at or below it are
// deleted.

// spoolLine is a record as the spool keeps it.
type spoolLine struct {
	Seq  uint64          `json:"seq"`
	ID   string          `json:"id"`
	Type string          `json:"type"`
	Time time.Time       `json:"time"`
	Hash string          `json:"hash"`
	Data json.RawMessage `json:"data"`
	// size is the line's length in the spool, set by the reader.
	size int64
}

// ErrSpoolFull: the spool holds as many bytes as it may; nothing more is
// recorded until the sink takes some.
var ErrSpoolFull = errors.New("the audit spool is full")

const deliveredFile = "delivered"

// spool is the on-disk queue of one sink. Append is called by recorders
// under mu; the reader (one delivery goroutine) reads segments on its own.
type spool struct {
	dir          string
	segmentBytes int64
	maxBytes     int64

	mu       sync.Mutex
	buf      []byte   // the line being appended, used again for the next
	f        *os.File // the segment being appended to
	fSize    int64
	nextSeq  uint64
	prevHash string
	bytes    int64 // in all segments
	// pending is the size of the records not yet delivered, which
	// MaxSpoolBytes bounds. At start it is every segment's size; the
	// reader releases what it skips as delivered before.
	pending    int64
	releasedTo uint64
	segments   []uint64
	// lost is set when the segment being written was found deleted or
	// moved (its spool directory removed): what is written to it would be
	// lost at the next start, so appends fail until a new segment opens.
	lost error

	// syncedTo is the last record an fsync has made durable. One fsync
	// runs at a time, without mu (syncing is set meanwhile, and synced
	// signalled when it ends), so that appends go on during it; a
	// segment rolled over meanwhile is closed when it ends (retired).
	// failedTo is the last record of an fsync that failed, with its
	// error: a record no later fsync covered is not durable.
	syncedTo  uint64
	syncing   bool
	synced    *sync.Cond
	retired   []*os.File
	failedTo  uint64
	failedErr error

	// mark is the delivered mark's file, opened by the first
	// markDelivered; it is used by the reader's goroutine only, and
	// closed by close once that goroutine has ended.
	mark *os.File
}

// openSpool opens or creates the spool in dir and recovers its last
// sequence number and hash. A partial last line (a machine crash in the
// middle of a write) is cut off.
func openSpool(dir string, segmentBytes, maxBytes int64) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	s := &spool{dir: dir, segmentBytes: segmentBytes, maxBytes: maxBytes, nextSeq: 1}
	s.synced = sync.NewCond(&s.mu)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".log")
		if !ok {
			continue
		}
		first, err := strconv.ParseUint(name, 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			return nil, err
		}
		s.segments = append(s.segments, first)
		s.bytes += info.Size()
	}
	slices.Sort(s.segments)
	s.pending = s.bytes
	if n := len(s.segments); n > 0 {
		last, size, err := recoverSegment(s.segmentPath(s.segments[n-1]))
		if err != nil {
			return nil, err
		}
		if last != nil {
			s.nextSeq, s.prevHash = last.Seq+1, last.Hash
		} else {
			s.nextSeq = s.segments[n-1]
		}
		if s.f, err = os.OpenFile(s.segmentPath(s.segments[n-1]), os.O_WRONLY|os.O_APPEND, 0o600); err != nil {
			return nil, err
		}
		s.fSize = size
	}
	if d, err := s.readMark(); err == nil && d >= s.nextSeq {
		// Everything was delivered and the segments are gone: keep counting.
		s.nextSeq = d + 1
	}
	s.syncedTo = s.nextSeq - 1
	return s, nil
}

// recoverSegment returns the last whole record of the segment at path and
// the segment's size, cutting off a partial last line.
func recoverSegment(path string) (*spoolLine, int64, error) {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var last *spoolLine
	var good int64
	r := bufio.NewReader(f)
	for {
		line, err := r.ReadBytes('\n')
		if len(line) > 0 && line[len(line)-1] == '\n' {
			var l spoolLine
			if json.Unmarshal(line, &l) != nil {
				break // a torn or foreign line: the segment ends before it
			}
			last, good = &l, good+int64(len(line))
		}
		if err != nil {
			break
		}
	}
	info, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if info.Size() != good {
		if err := f.Truncate(good); err != nil {
			return nil, 0, fmt.Errorf("cut the partial record off %s: %w", path, err)
		}
	}
	return last, good, nil
}

func (s *spool) segmentPath(first uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%020d.log", first))
}

// append writes one record: build appends the record's spool line (see
// appendSpoolLine), numbered seq and chained to prev, to b and returns it
// with the record's hash. It is called with the spool's lock held, so
// records are numbered and chained in the order they are written, and b
// is the spool's buffer, used again for the next record.
func (s *spool) append(build func(b []byte, seq uint64, prev string) ([]byte, string, error)) (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	line, h, err := build(s.buf[:0], s.nextSeq, s.prevHash)
	s.buf = keep(line)
	if err != nil {
		return 0, err
	}
	if s.maxBytes > 0 && s.pending+int64(len(line)) > s.maxBytes {
		return 0, ErrSpoolFull
	}
	if s.f == nil || s.fSize >= s.segmentBytes || s.lost != nil {
		if err := s.roll(); err != nil {
			if s.lost != nil {
				return 0, fmt.Errorf("%w (and a new segment cannot be made: %w)", s.lost, err)
			}
			return 0, err
		}
		s.lost = nil
	}
	n, err := s.f.Write(line)
	if err != nil {
		// A short write leaves a torn line: cut it, so that the next
		// record starts a line of its own.
		if n > 0 {
			s.f.Truncate(s.fSize)
		}
		return 0, fmt.Errorf("write the audit spool: %w", err)
	}
	s.fSize += int64(n)
	s.bytes += int64(n)
	s.pending += int64(n)
	seq := s.nextSeq
	s.nextSeq++
	s.prevHash = h
	return seq, nil
}

// roll starts a new segment at nextSeq. Called with mu held.
func (s *spool) roll() error {
	if s.f != nil {
		if err := s.f.Sync(); err != nil {
			return fmt.Errorf("sync the audit spool: %w", err)
		}
		if s.syncing {
			s.retired = append(s.retired, s.f)
		} else {
			s.f.Close()
		}
		s.f = nil
		s.syncedTo = s.nextSeq - 1
	}
	f, err := os.OpenFile(s.segmentPath(s.nextSeq), os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("create an audit spool segment: %w", err)
	}
	if d, err := os.Open(s.dir); err == nil {
		d.Sync() // the new file's name is durable too
		d.Close()
	}
	s.f, s.fSize = f, 0
	s.segments = append(s.segments, s.nextSeq)
	return nil
}

// sync makes the records up to seq durable: it fsyncs the segment being
// written, unless an fsync begun after they were written has ended.
// Concurrent calls share fsyncs (group commit): one runs at a time,
// without the lock, so that records are appended meanwhile, and a call
// whose records the fsync under way covers waits for it rather than
// running its own.
func (s *spool) sync(seq uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.syncedTo < seq && s.f != nil {
		if s.syncing {
			s.synced.Wait()
			continue
		}
		if s.failedTo >= seq {
			return s.failedErr
		}
		f, upTo, start := s.f, s.nextSeq-1, s.segments[len(s.segments)-1]
		s.syncing = true
		s.mu.Unlock()
		err := f.Sync()
		if testHookSynced != nil {
			testHookSynced()
		}
		deleted := err == nil && gone(f)
		s.mu.Lock()
		s.syncing = false
		for _, r := range s.retired {
			r.Close()
		}
		s.retired = nil
		s.synced.Broadcast()
		if err != nil {
			// Linux reports a failed writeback to one fsync only: the
			// records it covered are not known durable by a later one.
			s.failedTo, s.failedErr = upTo, fmt.Errorf("sync the audit spool: %w", err)
			return s.failedErr
		}
		// A segment that rolled over and then went because its records
		// were delivered (markDelivered) is not lost; one still listed
		// that has no name is.
		if deleted && slices.Contains(s.segments, start) {
			s.lost = fmt.Errorf("the audit spool segment %s was deleted", f.Name())
			return s.lost
		}
		s.syncedTo = max(s.syncedTo, upTo)
	}
	return nil
}

// testHookSynced, if set, runs after sync's fsync, before it looks at
// whether the segment is gone: tests roll and trim segments there.
var testHookSynced func()

// gone reports whether f's file has no name left (its directory was
// removed, or it was deleted).
func gone(f *os.File) bool {
	info, err := f.Stat()
	if err != nil {
		return true
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	return ok && st.Nlink == 0
}

func (s *spool) close() error {
	if s.mark != nil {
		s.mark.Close()
		s.mark = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for s.syncing {
		s.synced.Wait()
	}
	if s.f == nil {
		return nil
	}
	err := s.f.Sync()
	s.f.Close()
	s.f = nil
	return err
}

// errBadMark: the delivered mark holds no sequence number.
var errBadMark = errors.New("the delivered mark holds no sequence number")

// readMark returns the sequence number in the delivered mark; 0 when there
// is none.
func (s *spool) readMark() (uint64, error) {
	b, err := os.ReadFile(filepath.Join(s.dir, deliveredFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	d, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %q", errBadMark, b)
	}
	return d, nil
}

// delivered returns the sequence number of the last delivered record: the
// delivered mark's, but never less than the record before the first
// segment, as segments are deleted only once delivered (the mark is not
// fsynced, so after a machine crash it can be older than a deletion). A
// mark that holds no number (a machine crash before it was ever written
// out) is reported with that floor, and errBadMark.
func (s *spool) delivered() (uint64, error) {
	d, err := s.readMark()
	if err != nil && !errors.Is(err, errBadMark) {
		return 0, err
	}
	if segs := s.segmentList(); len(segs) > 0 && segs[0] > 0 {
		d = max(d, segs[0]-1)
	}
	return d, err
}

// markDelivered records that every record up to seq was delivered, and
// deletes the segments that hold nothing later. The mark is rewritten in
// place with one write of a fixed width, so it is either the old or the
// new one; it is not fsynced: after a machine crash an older mark means
// records delivered again, which receivers drop by ID. (A temporary file
// renamed over the mark cost the file system a new file, and an
// allocation of its data, per batch.)
func (s *spool) markDelivered(seq uint64) error {
	if s.mark == nil {
		f, err := os.OpenFile(filepath.Join(s.dir, deliveredFile), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return err
		}
		s.mark = f
	}
	// Every mark is 21 bytes at most (a uint64 has 20 digits), so this
	// overwrites the whole of an earlier one, even one written before
	// marks had a fixed width.
	if _, err := s.mark.WriteAt(fmt.Appendf(nil, "%020d\n", seq), 0); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	// A segment may go when the next one starts at or below seq+1 and it
	// is not the one being appended to.
	for len(s.segments) > 1 && s.segments[1] <= seq+1 {
		p := s.segmentPath(s.segments[0])
		if info, err := os.Stat(p); err == nil {
			s.bytes -= info.Size()
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		s.segments = s.segments[1:]
	}
	return nil
}

// release takes the record seq, of size bytes, out of the pending size,
// once: records are released in order, and again never.
func (s *spool) release(seq uint64, size int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if seq > s.releasedTo {
		s.pending = max(0, s.pending-size)
		s.releasedTo = seq
	}
}

// segmentList returns the first sequence numbers of the segments, in order.
func (s *spool) segmentList() []uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.segments)
}

// segmentAfter reports whether the segment whose first record is first
// is in the spool, and the first record of the segment after it, if
// there is one (0 if not).
func (s *spool) segmentAfter(first uint64) (next uint64, found bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i, found := slices.BinarySearch(s.segments, first)
	if found && i+1 < len(s.segments) {
		next = s.segments[i+1]
	}
	return next, found
}

// written returns the sequence number of the last record written.
func (s *spool) written() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nextSeq - 1
}

func (s *spool) size() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.bytes
}

// room reports whether the spool can take a record of n bytes now.
func (s *spool) room(n int64) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.maxBytes <= 0 || s.pending+n <= s.maxBytes
}
