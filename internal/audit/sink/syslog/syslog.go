package syslog

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Config configures a Sink.
type Config struct {
	// Address is the receiver's host:port. Required.
	Address string
	// TLS, if not nil, makes the connection TLS (RFC 5425) with this
	// configuration; its ServerName defaults to Address's host. Nil means
	// plain TCP (RFC 6587).
	TLS *tls.Config
	// AppName is the APP-NAME of every message: 1 to 48 printable ASCII
	// characters. Default "jitproxy".
	AppName string
	// Hostname is the HOSTNAME of every message: 1 to 255 printable ASCII
	// characters. Default os.Hostname, with any other character replaced
	// by '_'; NILVALUE ("-") if that fails.
	Hostname string
	// Facility is the facility of every message, by its syslog.conf name:
	// auth, authpriv, daemon, user or local0 to local7. Default "auth"
	// (4, "security/authorization messages" in RFC 5424), which receivers
	// such as Debian's rsyslog keep apart from the general log.
	Facility string
	// StructuredDataID is the SD-ID of the element that carries each
	// record's id and seq: NAME@PRIVATE-ENTERPRISE-NUMBER. Default
	// "jitproxy@32473"; 32473 is the enterprise number IANA reserves for
	// documentation and examples (RFC 5612), since jitproxy has none of
	// its own. An organisation with its own number can put it here.
	StructuredDataID string
	// DialTimeout bounds connecting, TLS handshake included. Default 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds each write to the connection, of at most about
	// 64 KiB of messages. Default 10s.
	WriteTimeout time.Duration
}

// Defaults.
const (
	DefaultAppName          = "jitproxy"
	DefaultFacility         = "auth"
	DefaultStructuredDataID = "jitproxy@32473"
	DefaultDialTimeout      = 10 * time.Second
	DefaultWriteTimeout     = 10 * time.Second
)

// flushSize is how many bytes of frames Deliver gathers before a write.
const flushSize = 64 << 10

// Sink delivers audit records to a syslog receiver over one TCP or TLS
// connection, opened on the first Deliver and kept. It implements
// audit.Sink and is safe for concurrent use, though the audit stream calls
// it from one goroutine.
type Sink struct {
	cfg      Config
	priority int
	tlsConf  *tls.Config

	mu     sync.Mutex
	conn   net.Conn // the connection, TLS or not; nil until dialled
	raw    net.Conn // the TCP connection under conn
	buf    []byte
	closed bool
}

var _ audit.Sink = (*Sink)(nil)

// errClosed is Deliver's error after Close.
var errClosed = errors.New("syslog sink closed")

// New checks cfg, fills in its defaults and returns a Sink. It does not
// connect. Every problem with cfg is reported, joined.
func New(cfg Config) (*Sink, error) {
	var errs []error
	if cfg.Address == "" {
		errs = append(errs, errors.New("address is required"))
	} else if host, port, err := net.SplitHostPort(cfg.Address); err != nil || host == "" || port == "" {
		errs = append(errs, fmt.Errorf("address %q: want host:port", cfg.Address))
	}
	if cfg.AppName == "" {
		cfg.AppName = DefaultAppName
	}
	if err := checkHeaderField("app name", cfg.AppName, maxAppName); err != nil {
		errs = append(errs, err)
	}
	if cfg.Hostname == "" {
		h, err := os.Hostname()
		if err == nil {
			cfg.Hostname = sanitizeHostname(h)
		}
	} else if err := checkHeaderField("hostname", cfg.Hostname, maxHostname); err != nil {
		errs = append(errs, err)
	}
	if cfg.Facility == "" {
		cfg.Facility = DefaultFacility
	}
	facility, ok := facilities[cfg.Facility]
	if !ok {
		errs = append(errs, fmt.Errorf("facility %q: want auth, authpriv, daemon, user or local0 to local7", cfg.Facility))
	}
	if cfg.StructuredDataID == "" {
		cfg.StructuredDataID = DefaultStructuredDataID
	}
	if err := checkSDID(cfg.StructuredDataID); err != nil {
		errs = append(errs, err)
	}
	if cfg.DialTimeout < 0 || cfg.WriteTimeout < 0 {
		errs = append(errs, errors.New("timeouts must not be negative"))
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = DefaultDialTimeout
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = DefaultWriteTimeout
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("syslog sink: %w", err)
	}
	s := &Sink{cfg: cfg, priority: facility*8 + severityInfo}
	if cfg.TLS != nil {
		s.tlsConf = cfg.TLS.Clone()
		if s.tlsConf.ServerName == "" {
			host, _, _ := net.SplitHostPort(cfg.Address)
			s.tlsConf.ServerName = host
		}
	}
	return s, nil
}

// Deliver writes each record of batch, in order, as one octet-counted RFC
// 5424 message (see the package documentation), connecting first if there
// is no connection or the receiver has closed it. It returns nil once every
// message is written to the connection, which means in the local kernel's
// send buffer, not yet read by the receiver. On any error the connection
// is closed, so the next Deliver connects anew, and the error is returned;
// some of the batch may have reached the receiver. When ctx ends, Deliver
// stops and returns an error wrapping ctx's. An empty batch is nil without
// connecting.
func (s *Sink) Deliver(ctx context.Context, batch []audit.Record) (err error) {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("deliver to syslog %s: %w", s.cfg.Address, err)
	}
	if s.conn != nil && !s.alive() {
		s.closeConn()
	}
	if s.conn == nil {
		if err := s.dial(ctx); err != nil {
			return err
		}
	}
	conn := s.conn
	// Writes stop when ctx ends.
	stop := context.AfterFunc(ctx, func() { conn.SetWriteDeadline(time.Unix(1, 0)) })
	defer func() {
		if !stop() || err != nil {
			// A deadline set by ctx may outlive this call: start anew.
			s.closeConn()
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && ctx.Err() != nil {
			// The deadline was ctx's doing.
			err = fmt.Errorf("write to syslog %s: %w", s.cfg.Address, context.Cause(ctx))
		}
	}()
	buf := s.buf[:0]
	m := message{
		Priority: s.priority,
		Hostname: s.cfg.Hostname,
		AppName:  s.cfg.AppName,
		SDID:     s.cfg.StructuredDataID,
		Params:   []param{{Name: "id"}, {Name: "seq"}},
	}
	for i, r := range batch {
		m.Time = r.Time
		m.MsgID = sanitizeMsgID(r.Type)
		m.Params[0].Value = r.ID
		m.Params[1].Value = strconv.FormatUint(r.Seq, 10)
		m.Msg = r.Data
		buf = appendFrame(buf, &m)
		if len(buf) >= flushSize || i == len(batch)-1 {
			if err := s.write(ctx, conn, buf); err != nil {
				return err
			}
			buf = buf[:0]
		}
	}
	if cap(buf) <= 4*flushSize {
		s.buf = buf
	}
	return nil
}

// write writes b within WriteTimeout, or until ctx ends.
func (s *Sink) write(ctx context.Context, conn net.Conn, b []byte) error {
	if err := conn.SetWriteDeadline(time.Now().Add(s.cfg.WriteTimeout)); err != nil {
		return fmt.Errorf("write to syslog %s: %w", s.cfg.Address, err)
	}
	// Checked after the deadline is set: if ctx ended before, the deadline
	// set for it may just have been replaced.
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("write to syslog %s: %w", s.cfg.Address, context.Cause(ctx))
	}
	if _, err := conn.Write(b); err != nil {
		return fmt.Errorf("write to syslog %s: %w", s.cfg.Address, err)
	}
	return nil
}

// alive reports whether the connection still stands: false if the
// receiver has closed or reset it. A syslog receiver sends nothing (but
// TLS records: session tickets, alerts), so what it sent is read and
// dropped, up to a close_notify or end of file.
func (s *Sink) alive() bool {
	closed, pending := peek(s.raw)
	if closed {
		return false
	}
	if !pending {
		return true
	}
	if err := s.conn.SetReadDeadline(time.Now().Add(5 * time.Millisecond)); err != nil {
		return false
	}
	var b [512]byte
	for range 16 {
		if _, err := s.conn.Read(b[:]); err != nil {
			return errors.Is(err, os.ErrDeadlineExceeded)
		}
	}
	return true
}

// dial connects, TLS handshake included, within DialTimeout.
func (s *Sink) dial(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	d := net.Dialer{}
	raw, err := d.DialContext(ctx, "tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("connect to syslog %s: %w", s.cfg.Address, err)
	}
	conn := raw
	if s.tlsConf != nil {
		tc := tls.Client(raw, s.tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return fmt.Errorf("tls handshake with syslog %s: %w", s.cfg.Address, err)
		}
		conn = tc
	}
	s.conn, s.raw = conn, raw
	return nil
}

func (s *Sink) closeConn() {
	if s.conn != nil {
		s.conn.Close()
		s.conn, s.raw = nil, nil
	}
}

// Close closes the connection, after a Deliver under way has returned.
// Deliver fails after Close. Close is idempotent and returns nil.
func (s *Sink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	s.closeConn()
	return nil
}
