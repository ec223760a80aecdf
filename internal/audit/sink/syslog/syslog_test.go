package syslog

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// receiver is a syslog receiver on 127.0.0.1 that reads octet-counted RFC
// 5424 messages from every connection with go-syslog's parser.
type receiver struct {
	ln   net.Listener
	msgs chan parsed
	errs chan error

	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
}

func newReceiver(t *testing.T, tlsConf *tls.Config) *receiver {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if tlsConf != nil {
		ln = tls.NewListener(ln, tlsConf)
	}
	r := &receiver{ln: ln, msgs: make(chan parsed, 1000), errs: make(chan error, 100)}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(r.close)
	return r
}

func (r *receiver) addr() string { return r.ln.Addr().String() }

func (r *receiver) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		r.mu.Lock()
		r.conns = append(r.conns, c)
		r.mu.Unlock()
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			octetcounting.NewParser(gosyslog.WithListener(func(res *gosyslog.Result) {
				if res.Error != nil {
					r.errs <- res.Error
					return
				}
				r.msgs <- fromMessage(res.Message.(*rfc5424.SyslogMessage))
			}), gosyslog.WithMaxMessageLength(1<<20)).Parse(c)
		}()
	}
}

// closeConns closes the connections accepted so far, as a receiver that
// restarts would.
func (r *receiver) closeConns() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		c.Close()
	}
	r.conns = nil
}

func (r *receiver) accepted() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.conns)
}

func (r *receiver) close() {
	r.ln.Close()
	r.closeConns()
	r.wg.Wait()
}

// wait returns the next n messages.
func (r *receiver) wait(t *testing.T, n int) []parsed {
	t.Helper()
	var got []parsed
	for len(got) < n {
		select {
		case m := <-r.msgs:
			got = append(got, m)
		case err := <-r.errs:
			t.Fatalf("receiver: %v", err)
		case <-time.After(10 * time.Second):
			t.Fatalf("received %d messages, want %d", len(got), n)
		}
	}
	return got
}

func records(first uint64, n int) []audit.Record {
	var out []audit.Record
	for i := range n {
		seq := first + uint64(i)
		out = append(out, audit.Record{
			ID: fmt.Sprintf("ev-%d", seq), Seq: seq, Type: audit.TypeGrantApproved,
			Time: time.Date(2026, 11, 25, 10, 0, int(seq)%60, 1_500, time.UTC),
			Data: fmt.Appendf(nil, `{"id":"ev-%d","seq":%d,"reason":"grüße ✓"}`, seq, seq),
		})
	}
	return out
}

// want is how the receiver parses recs sent with the config of newSink.
func want(recs []audit.Record) []parsed {
	var out []parsed
	for _, r := range recs {
		out = append(out, parsed{
			Priority: 38, Facility: 4, Severity: 6, Version: 1,
			Timestamp: r.Time.Truncate(time.Microsecond), Hostname: "proxy-0", AppName: "jitproxy",
			MsgID: r.Type, SD: map[string]map[string]string{"jitproxy@32473": {"id": r.ID, "seq": fmt.Sprint(r.Seq)}},
			Message: string(r.Data),
		})
	}
	return out
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if cfg.Hostname == "" {
		cfg.Hostname = "proxy-0"
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Config{
		AppName: "jit proxy", Hostname: strings.Repeat("h", 256), Facility: "kern",
		StructuredDataID: "jitproxy", DialTimeout: -1,
	})
	if err == nil {
		t.Fatal("New accepted a bad config")
	}
	for _, want := range []string{"address is required", `app name "jit proxy"`, "hostname", `facility "kern"`, `structured-data ID "jitproxy"`, "timeouts"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	if _, err := New(Config{Address: "127.0.0.1"}); err == nil || !strings.Contains(err.Error(), "host:port") {
		t.Errorf("New with an address without port = %v", err)
	}
}

func TestNewDefaults(t *testing.T) {
	s, err := New(Config{Address: "127.0.0.1:1"})
	if err != nil {
		t.Fatal(err)
	}
	host, _ := os.Hostname()
	want := Config{
		Address: "127.0.0.1:1", AppName: "jitproxy", Hostname: sanitizeHostname(host), Facility: "auth",
		StructuredDataID: "jitproxy@32473", DialTimeout: 10 * time.Second, WriteTimeout: 10 * time.Second,
	}
	if diff := cmp.Diff(want, s.cfg); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if s.priority != 4*8+6 {
		t.Errorf("priority %d, want auth.info (38)", s.priority)
	}
}

func TestDeliver(t *testing.T) {
	r := newReceiver(t, nil)
	s := newSink(t, Config{Address: r.addr()})
	ctx := t.Context()

	// Nothing connects before there is something to deliver.
	if err := s.Deliver(ctx, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	if n := r.accepted(); n != 0 {
		t.Fatalf("%d connections before the first record", n)
	}

	first, second := records(1, 3), records(4, 2)
	if err := s.Deliver(ctx, first); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(ctx, second); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(append(first, second...)), r.wait(t, 5)); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
	if n := r.accepted(); n != 1 {
		t.Errorf("%d connections for two batches, want 1", n)
	}
}

// TestDeliverLargeBatch sends more than one write's worth of frames.
func TestDeliverLargeBatch(t *testing.T) {
	r := newReceiver(t, nil)
	s := newSink(t, Config{Address: r.addr()})
	recs := records(1, 300)
	for i := range recs {
		recs[i].Data = fmt.Appendf(nil, `{"seq":%d,"pad":"%s"}`, recs[i].Seq, strings.Repeat("x", 1000))
	}
	if err := s.Deliver(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want(recs), r.wait(t, len(recs))); diff != "" {
		t.Errorf("received (-want +got):\n%s", diff)
	}
}

// TestDeliverAfterReceiverClosed: a receiver that closed the connection
// (a restart) is noticed before writing, and Deliver connects anew; a
// receiver that is gone makes Deliver fail.
func TestDeliverAfterReceiverClosed(t *testing.T) {
	for _, tt := range []struct {
		name string
		tls  bool
	}{{"tcp", false}, {"tls", true}} {
		t.Run(tt.name, func(t *testing.T) {
			var serverConf, clientConf *tls.Config
			if tt.tls {
				serverConf, clientConf = tlsConfigs(t)
			}
			r := newReceiver(t, serverConf)
			s := newSink(t, Config{Address: r.addr(), TLS: clientConf})
			ctx := t.Context()
			if err := s.Deliver(ctx, records(1, 1)); err != nil {
				t.Fatal(err)
			}
			r.wait(t, 1)
			r.closeConns()
			time.Sleep(50 * time.Millisecond) // for the FIN to arrive
			if err := s.Deliver(ctx, records(2, 1)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(want(records(2, 1)), r.wait(t, 1)); diff != "" {
				t.Errorf("received (-want +got):\n%s", diff)
			}

			r.close()
			time.Sleep(50 * time.Millisecond)
			err := s.Deliver(ctx, records(3, 1))
			if err == nil || !strings.Contains(err.Error(), "connect to syslog "+r.addr()) {
				t.Errorf("Deliver to a closed receiver = %v, want a connect error", err)
			}
		})
	}
}

// TestDeliverStuckReceiver: a receiver that stops reading makes Deliver
// fail after WriteTimeout, or when ctx ends, and the next Deliver connects
// anew.
func TestDeliverStuckReceiver(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 10)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- c // and never read
		}
	}()
	big := records(1, 1)
	big[0].Data = make([]byte, 32<<20)
	for i := range big[0].Data {
		big[0].Data[i] = 'x'
	}

	s := newSink(t, Config{Address: ln.Addr().String(), WriteTimeout: 200 * time.Millisecond})
	start := time.Now()
	err = s.Deliver(t.Context(), big)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("Deliver to a receiver that does not read = %v, want a timeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Deliver took %s", d)
	}
	(<-accepted).Close()

	ctx, cancel := context.WithCancel(t.Context())
	s = newSink(t, Config{Address: ln.Addr().String(), WriteTimeout: time.Minute})
	time.AfterFunc(200*time.Millisecond, cancel)
	err = s.Deliver(ctx, big)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with ctx cancelled = %v, want context.Canceled", err)
	}
	if s.conn != nil {
		t.Error("the connection is kept after a failed Deliver")
	}
	(<-accepted).Close()
	if err := s.Deliver(ctx, records(1, 1)); !errors.Is(err, context.Canceled) {
		t.Errorf("Deliver with ctx done = %v, want context.Canceled", err)
	}
}

func TestDeliverAfterClose(t *testing.T) {
	r := newReceiver(t, nil)
	s := newSink(t, Config{Address: r.addr()})
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(t.Context(), records(1, 1)); !errors.Is(err, errClosed) {
		t.Errorf("Deliver after Close = %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v", err)
	}
}

// TestTLSVerifiesTheReceiver: the receiver's certificate is checked
// against the host of Address.
func TestTLSVerifiesTheReceiver(t *testing.T) {
	serverConf, clientConf := tlsConfigs(t)
	r := newReceiver(t, serverConf)
	s := newSink(t, Config{Address: r.addr(), TLS: &tls.Config{RootCAs: x509.NewCertPool()}})
	var unknown x509.UnknownAuthorityError
	if err := s.Deliver(t.Context(), records(1, 1)); !errors.As(err, &unknown) {
		t.Errorf("Deliver to an unknown CA = %v", err)
	}
	other := clientConf.Clone()
	other.ServerName = "other.example"
	s = newSink(t, Config{Address: r.addr(), TLS: other})
	var host x509.HostnameError
	if err := s.Deliver(t.Context(), records(1, 1)); !errors.As(err, &host) {
		t.Errorf("Deliver to a certificate for another name = %v", err)
	}
}

// tlsConfigs returns a server config with a certificate for 127.0.0.1 and
// a client config trusting it.
func tlsConfigs(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "syslog-test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign, IsCA: true, BasicConstraintsValid: true,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}
