// Package file is the audit sink that writes records as JSON lines to a
// file, rotated by size and by age and kept for a retention period, or to
// standard output.
//
// A batch is delivered when its lines are written and the file is fsynced,
// so a record the spool lets go of is on disk. Rotation renames the file to
// NAME-YYYYMMDDTHHMMSS.mmmZ.EXT and starts a new one; rotated files older
// than the retention are deleted. (gopkg.in/natefinch/lumberjack does the
// rotation part well, but offers no fsync, which delivery needs.)
package file

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Config configures a file sink.
type Config struct {
	// Path is the file records are appended to. Required.
	Path string
	// MaxBytes rotates the file before it grows past this size; default
	// 100 MiB.
	MaxBytes int64
	// MaxAge rotates the file once it is this old; default 24h.
	MaxAge time.Duration
	// Retention deletes rotated files older than this; default 30 days.
	// Negative keeps them all.
	Retention time.Duration
	Now       func() time.Time
}

// Sink writes records to a rotated file. The zero value is not usable;
// call New.
type Sink struct {
	cfg Config

	mu     sync.Mutex
	f      *os.File
	size   int64
	opened time.Time
	buf    []byte // a batch's lines, used again for the next
}

// New validates cfg and opens (or creates, mode 0600) the file.
func New(cfg Config) (*Sink, error) {
	if cfg.Path == "" {
		return nil, errors.New("file sink: path is required")
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = 100 << 20
	}
	if cfg.MaxAge <= 0 {
		cfg.MaxAge = 24 * time.Hour
	}
	if cfg.Retention == 0 {
		cfg.Retention = 30 * 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Sink{cfg: cfg}
	if err := s.open(); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Sink) open() error {
	f, err := os.OpenFile(s.cfg.Path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("file sink: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("file sink: %w", err)
	}
	s.f, s.size, s.opened = f, info.Size(), s.cfg.Now()
	if info.Size() > 0 {
		s.opened = info.ModTime() // an existing file is as old as its last write, at least
	}
	return nil
}

// Deliver appends the records, one line each, and fsyncs the file,
// rotating it first when it is too old or the batch would make it too big.
func (s *Sink) Deliver(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := appendLines(s.buf[:0], batch)
	s.buf = keep(b)
	if s.f == nil {
		if err := s.open(); err != nil {
			return err
		}
	}
	if s.size > 0 && (s.size+int64(len(b)) > s.cfg.MaxBytes || s.cfg.Now().Sub(s.opened) >= s.cfg.MaxAge) {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	n, err := s.f.Write(b)
	s.size += int64(n)
	if err != nil {
		return fmt.Errorf("file sink: write: %w", err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink: sync: %w", err)
	}
	return nil
}

// rotate renames the file aside, opens a new one and deletes rotated files
// past the retention. Called with mu held.
func (s *Sink) rotate() error {
	if err := s.f.Close(); err != nil {
		return fmt.Errorf("file sink: close for rotation: %w", err)
	}
	s.f = nil
	ext := filepath.Ext(s.cfg.Path)
	base := strings.TrimSuffix(s.cfg.Path, ext)
	aside := fmt.Sprintf("%s-%s%s", base, s.cfg.Now().UTC().Format("20060102T150405.000Z"), ext)
	if err := os.Rename(s.cfg.Path, aside); err != nil {
		return fmt.Errorf("file sink: rotate: %w", err)
	}
	if err := s.open(); err != nil {
		return err
	}
	s.prune(base, ext)
	return nil
}

// prune deletes rotated files older than the retention.
func (s *Sink) prune(base, ext string) {
	if s.cfg.Retention < 0 {
		return
	}
	matches, _ := filepath.Glob(base + "-*" + ext)
	sort.Strings(matches)
	for _, m := range matches {
		stamp := strings.TrimSuffix(strings.TrimPrefix(m, base+"-"), ext)
		t, err := time.Parse("20060102T150405.000Z", stamp)
		if err == nil && s.cfg.Now().Sub(t) > s.cfg.Retention {
			os.Remove(m)
		}
	}
}

// Close closes the file.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.f == nil {
		return nil
	}
	err := s.f.Close()
	s.f = nil
	return err
}

// appendLines appends the batch to b as JSON lines.
func appendLines(b []byte, batch []audit.Record) []byte {
	n := 0
	for _, r := range batch {
		n += len(r.Data) + 1
	}
	b = slices.Grow(b, n)
	for _, r := range batch {
		b = append(b, r.Data...)
		b = append(b, '\n')
	}
	return b
}

// keep returns b to be used for the next batch, unless it is larger
// than batches usually need: a buffer kept should not hold on to one
// large batch.
func keep(b []byte) []byte {
	if cap(b) > 1<<20 {
		return nil
	}
	return b
}

// Writer is the sink that writes records as JSON lines to an io.Writer,
// such as standard output. A batch is delivered when written.
type Writer struct {
	mu  sync.Mutex
	w   io.Writer
	buf []byte // a batch's lines, used again for the next
}

// NewWriter returns a sink writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Deliver writes the records, one line each, in one write.
func (s *Writer) Deliver(_ context.Context, batch []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := appendLines(s.buf[:0], batch)
	s.buf = keep(b)
	if _, err := s.w.Write(b); err != nil {
		return fmt.Errorf("write audit events: %w", err)
	}
	return nil
}

// Close does nothing: the writer is the caller's.
func (*Writer) Close() error { return nil }
