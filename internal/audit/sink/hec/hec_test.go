package hec

import (
	"context"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/audit/sink/hec/hectest"
	"github.com/jitproxy/jitproxy/internal/secret"
)

const testToken = "canary-hec-token-6d2e41"

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	if cfg.TokenFile == "" {
		cfg.TokenFile = writeFile(t, "token", testToken+"\n")
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ids(events []hectest.Event) []string {
	var out []string
	for _, e := range events {
		var rec struct {
			ID string `json:"id"`
		}
		json.Unmarshal(e.Event, &rec)
		out = append(out, rec.ID)
	}
	return out
}

func recordIDs(batch []audit.Record) []string {
	var out []string
	for _, r := range batch {
		out = append(out, r.ID)
	}
	return out
}

func TestNewReportsEveryProblem(t *testing.T) {
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "nothing", cfg: Config{}, want: []string{"url is required", "token_file is required"}},
		{
			name: "all at once",
			cfg: Config{
				URL: "https://splunk.example.com:8088/services/collector/event", TokenFile: "/nonexistent/token",
				Channel: "not-a-guid", CAFile: "/nonexistent/ca.pem", Timeout: -1, AckTimeout: -1, MaxRequestBytes: -1,
			},
			want: []string{"not an endpoint", "token_file", "channel \"not-a-guid\"", "ca_file", "timeout -1ns", "ack_timeout -1ns", "max_request_bytes -1"},
		},
		{name: "scheme", cfg: Config{URL: "tcp://splunk:8088", TokenFile: writeFile(t, "t", "x")}, want: []string{"scheme must be http or https"}},
		{name: "query", cfg: Config{URL: "https://splunk:8088/?token=x", TokenFile: writeFile(t, "t", "x")}, want: []string{"the token comes from token_file"}},
		{name: "empty token", cfg: Config{URL: "https://splunk:8088", TokenFile: writeFile(t, "t", "\n")}, want: []string{"is empty"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.cfg)
			if err == nil {
				t.Fatal("New accepted the config")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("New error %q does not say %q", err, w)
				}
			}
		})
	}
}

func TestChannel(t *testing.T) {
	a := newSink(t, Config{URL: "http://127.0.0.1:1"})
	b := newSink(t, Config{URL: "http://127.0.0.1:1"})
	if !guid.MatchString(a.Channel()) || a.Channel() == b.Channel() {
		t.Errorf("channels %q and %q: want two different GUIDs", a.Channel(), b.Channel())
	}
	const fixed = "0F1E2D3C-4B5A-6978-8796-A5B4C3D2E1F0"
	if c := newSink(t, Config{URL: "http://127.0.0.1:1", Channel: fixed}); c.Channel() != fixed {
		t.Errorf("Channel() = %q, want the configured %q", c.Channel(), fixed)
	}
}

func TestEventObjects(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true, Indexes: []string{"audit"}})
	s := newSink(t, Config{URL: hec.URL(), Host: "proxy-1", Index: "audit"})
	batch := audittest.NewStream("ev").Next(t, 3)
	batch[2].Time = time.Time{}
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	events := hec.Events()
	if len(events) != 3 {
		t.Fatalf("HEC indexed %d events, want 3", len(events))
	}
	for i, e := range events {
		// The record's JSON as sent, byte for byte: its hash chain holds.
		if string(e.Event) != string(batch[i].Data) {
			t.Errorf("event %d is\n%s\nwant the record\n%s", i, e.Event, batch[i].Data)
		}
		want := hectest.Event{Channel: s.Channel(), Host: "proxy-1", Source: "jitproxy", Sourcetype: DefaultSourcetype, Index: "audit", Event: e.Event}
		if i < 2 {
			us := batch[i].Time.UnixMicro()
			want.Time = json.Number(fmt.Sprintf("%d.%06d", us/1e6, us%1e6))
		}
		if diff := cmp.Diff(want, e); diff != "" {
			t.Errorf("event %d (-want +got):\n%s", i, diff)
		}
	}
	if got, want := string(events[0].Time), "1740830400.001500"; got != want {
		t.Errorf("time %s, want %s (seconds.microseconds of 2025-03-01T12:00:00.001500789Z)", got, want)
	}
	c := audit.NewChainer(nil)
	prev := ""
	for i, e := range events {
		h, err := c.Open(prev, e.Event)
		if err != nil {
			t.Fatalf("the chain breaks at event %d: %v", i, err)
		}
		prev = h
	}
}

// TestDeliveredMeansIndexed shows that Deliver returns only once HEC
// acknowledges every event as indexed, and fails when the
// acknowledgement does not come.
func TestDeliveredMeansIndexed(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true})
	s := newSink(t, Config{URL: hec.URL(), AckTimeout: 10 * time.Second})
	stream := audittest.NewStream("idx")

	hec.Hold(true)
	done := make(chan error, 1)
	go func() { done <- s.Deliver(t.Context(), stream.Next(t, 2)) }()
	select {
	case err := <-done:
		t.Fatalf("Deliver returned %v before HEC indexed the events", err)
	case <-time.After(time.Second):
	}
	hec.Hold(false)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Deliver did not return after HEC indexed the events")
	}
	var acked bool
	for _, r := range hec.Requests() {
		acked = acked || r == "POST /services/collector/ack 0"
	}
	if !acked {
		t.Errorf("no ack query among %q", hec.Requests())
	}

	t.Run("no acknowledgement", func(t *testing.T) {
		hec.Hold(true)
		defer hec.Hold(false)
		s := newSink(t, Config{URL: hec.URL(), AckTimeout: 500 * time.Millisecond})
		start := time.Now()
		err := s.Deliver(t.Context(), stream.Next(t, 1))
		if err == nil || !strings.Contains(err.Error(), "no indexer acknowledgement of ackIds [0]") || !strings.Contains(err.Error(), "sent again") {
			t.Fatalf("Deliver = %v, want no acknowledgement", err)
		}
		if took := time.Since(start); took > 3*time.Second {
			t.Errorf("Deliver took %s with a 500ms ack timeout", took)
		}
		t.Logf("error: %v", err)
	})

	t.Run("context ends", func(t *testing.T) {
		hec.Hold(true)
		defer hec.Hold(false)
		ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
		defer cancel()
		err := s.Deliver(ctx, stream.Next(t, 1))
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Deliver = %v, want the context's deadline", err)
		}
	})
}

func TestAckModes(t *testing.T) {
	batch := audittest.NewStream("mode").Next(t, 2)
	for _, tt := range []struct {
		name       string
		tokenAck   bool // useACK on the token
		disableAck bool
		say        string // "" for delivered
	}{
		{name: "ack on both", tokenAck: true},
		{name: "ack off on both", disableAck: true},
		{name: "sink off, token on", tokenAck: true, disableAck: true},
		{name: "sink on, token off", say: "answered without an ackId: indexer acknowledgement is off for this token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: tt.tokenAck})
			s := newSink(t, Config{URL: hec.URL(), DisableAck: tt.disableAck})
			err := s.Deliver(t.Context(), batch)
			if tt.say != "" {
				if err == nil || !strings.Contains(err.Error(), tt.say) {
					t.Fatalf("Deliver = %v, want an error saying %q", err, tt.say)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tt.disableAck && !tt.tokenAck {
				if diff := cmp.Diff(recordIDs(batch), ids(hec.Events())); diff != "" {
					t.Errorf("indexed (-want +got):\n%s", diff)
				}
			}
			for _, r := range hec.Requests() {
				if tt.disableAck && strings.Contains(r, "/ack") {
					t.Errorf("with ack off the sink queried %q", r)
				}
			}
		})
	}
}

func TestErrors(t *testing.T) {
	batch := audittest.NewStream("err").Next(t, 1)
	for _, tt := range []struct {
		name      string
		setup     func(*hectest.Server)
		cfg       func(c *Config, hec *hectest.Server)
		status    int
		code      int
		transient bool
		say       string
	}{
		{
			name:   "invalid token",
			cfg:    func(c *Config, _ *hectest.Server) { c.TokenFile = writeFile(t, "other", "canary-other-token-77ab") },
			status: 403, code: 4, say: "Splunk does not know the token in token_file",
		},
		{
			name:   "token disabled",
			setup:  func(h *hectest.Server) { h.SetTokenDisabled(true) },
			status: 403, code: 1, say: "the HEC token is disabled",
		},
		{
			name:   "server busy",
			setup:  func(h *hectest.Server) { h.SetBusy(true) },
			status: 503, code: 9, transient: true, say: "Splunk is busy (its queues are full)",
		},
		{
			name:   "incorrect index",
			cfg:    func(c *Config, _ *hectest.Server) { c.Index = "secret" },
			status: 400, code: 7, say: "the token may not write to the configured index",
		},
		{
			name:   "no HEC there",
			cfg:    func(c *Config, h *hectest.Server) { c.URL = h.URL() + "/prefix" },
			status: 404, code: -1, say: "no HEC there; check url",
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true, Indexes: []string{"audit"}})
			if tt.setup != nil {
				tt.setup(hec)
			}
			cfg := Config{URL: hec.URL()}
			if tt.cfg != nil {
				tt.cfg(&cfg, hec)
			}
			s := newSink(t, cfg)
			err := s.Deliver(t.Context(), batch)
			e, ok := errors.AsType[*Error](err)
			if !ok {
				t.Fatalf("Deliver = %v, not an *Error", err)
			}
			if e.StatusCode != tt.status || e.Code != tt.code || e.Transient() != tt.transient {
				t.Errorf("status %d code %d transient %v, want %d %d %v", e.StatusCode, e.Code, e.Transient(), tt.status, tt.code, tt.transient)
			}
			if !strings.Contains(err.Error(), tt.say) {
				t.Errorf("error %q does not say %q", err, tt.say)
			}
			if strings.Contains(err.Error(), testToken) || strings.Contains(fmt.Sprintf("%#v %+v", err, e), testToken) {
				t.Errorf("the error shows the token: %v", err)
			}
			t.Logf("error: %v", err)
		})
	}
}

func TestTokenRotation(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true})
	tokenFile := writeFile(t, "token", testToken)
	s := newSink(t, Config{URL: hec.URL(), TokenFile: tokenFile})
	stream := audittest.NewStream("rot")
	if err := s.Deliver(t.Context(), stream.Next(t, 1)); err != nil {
		t.Fatal(err)
	}
	// Splunk knows only the new token now; the file says so too.
	const rotated = "canary-rotated-token-0c9f"
	hec2 := hectest.Start(t, hectest.Options{Token: rotated, Ack: true})
	s2 := newSink(t, Config{URL: hec2.URL(), TokenFile: tokenFile})
	if err := s2.Deliver(t.Context(), stream.Next(t, 1)); err == nil {
		t.Fatal("Deliver with the old token = nil")
	}
	if err := os.WriteFile(tokenFile, []byte(rotated+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s2.Deliver(t.Context(), stream.Next(t, 1)); err != nil {
		t.Fatalf("Deliver after the token file changed: %v", err)
	}
}

func TestLargeBatchInSeveralRequests(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true})
	batch := audittest.NewStream("big").Next(t, 5)
	// Room for two events per request.
	one, err := newSink(t, Config{URL: hec.URL()}).appendEvent(nil, batch[0])
	if err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{URL: hec.URL(), MaxRequestBytes: 2*len(one) + len(one)/2})
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(recordIDs(batch), ids(hec.Events())); diff != "" {
		t.Errorf("indexed (-want +got):\n%s", diff)
	}
	var posts int
	for _, r := range hec.Requests() {
		if r == "POST /services/collector/event 0" {
			posts++
		}
	}
	if posts != 3 {
		t.Errorf("%d event requests, want 3 (2+2+1): %q", posts, hec.Requests())
	}
}

func TestNotAJSONObject(t *testing.T) {
	s := newSink(t, Config{URL: "http://127.0.0.1:1"})
	err := s.Deliver(t.Context(), []audit.Record{{ID: "x", Seq: 1, Data: []byte(`"a string"`)}})
	if err == nil || !strings.Contains(err.Error(), "record x is not a JSON object") {
		t.Fatalf("Deliver = %v", err)
	}
}

func TestTransport(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true, TLS: true})
	batch := audittest.NewStream("tls").Next(t, 1)
	hec.Server().Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake

	t.Run("ca_file", func(t *testing.T) {
		s := newSink(t, Config{URL: hec.URL()})
		if err := s.Deliver(t.Context(), batch); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Fatalf("Deliver without ca_file = %v, want a certificate error", err)
		}
		ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hec.Server().Certificate().Raw})
		s = newSink(t, Config{URL: hec.URL(), CAFile: writeFile(t, "ca.pem", string(ca))})
		if err := s.Deliver(t.Context(), batch); err != nil {
			t.Fatalf("Deliver with ca_file = %v", err)
		}
	})

	t.Run("no redirect elsewhere", func(t *testing.T) {
		redirect := httptest.NewServer(http.RedirectHandler(hec.URL()+"/services/collector/event", http.StatusTemporaryRedirect))
		defer redirect.Close()
		s := newSink(t, Config{URL: redirect.URL})
		if err := s.Deliver(t.Context(), batch); err == nil || !strings.Contains(err.Error(), "not followed") {
			t.Fatalf("Deliver through a redirect to another host = %v", err)
		}
	})

	t.Run("no environment proxy", func(t *testing.T) {
		// net/http reads the environment's proxy once per process and never
		// uses it for loopback addresses, so only the transport can tell.
		s := newSink(t, Config{URL: "https://splunk.example.com:8088"})
		if tr, ok := s.client.Transport.(*http.Transport); !ok || tr.Proxy != nil {
			t.Fatalf("the sink's transport %T uses a proxy function", s.client.Transport)
		}
	})
}

func TestOutage(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true, IndexDelay: 50 * time.Millisecond})
	s := newSink(t, Config{URL: hec.URL(), Timeout: time.Second, AckTimeout: 5 * time.Second})
	audittest.CheckOutage(t, s, audittest.Destination{
		Stop:  func(*testing.T) { hec.Stop() },
		Start: func(t *testing.T) { hec.Restart(t) },
		IDs:   func(*testing.T) []string { return ids(hec.Events()) },
	})
}

// TestCrashBeforeIndexing: HEC takes a batch and crashes before indexing
// it. The acknowledgement never comes, so Deliver fails; once HEC is back,
// the same batch is sent again and every record is indexed.
func TestCrashBeforeIndexing(t *testing.T) {
	hec := hectest.Start(t, hectest.Options{Token: testToken, Ack: true})
	s := newSink(t, Config{URL: hec.URL(), Timeout: time.Second, AckTimeout: 2 * time.Second})
	stream := audittest.NewStream("crash")
	first := stream.Next(t, 2)
	if err := s.Deliver(t.Context(), first); err != nil {
		t.Fatal(err)
	}

	hec.Hold(true)
	batch := stream.Next(t, 3)
	done := make(chan error, 1)
	go func() { done <- s.Deliver(t.Context(), batch) }()
	time.Sleep(300 * time.Millisecond) // accepted, not indexed
	hec.Stop()
	err := <-done
	if err == nil {
		t.Fatal("Deliver = nil though HEC crashed before indexing")
	}
	t.Logf("error: %v", err)

	hec.Restart(t)
	hec.Hold(false)
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatalf("Deliver after HEC came back: %v", err)
	}
	if diff := cmp.Diff(append(recordIDs(first), recordIDs(batch)...), ids(hec.Events())); diff != "" {
		t.Errorf("indexed (-want +got):\n%s", diff)
	}
}

// FuzzAnswer feeds answers as HEC (or anything in front of it) might send
// them: the error never shows the token and stays one printable line.
func FuzzAnswer(f *testing.F) {
	f.Add(200, []byte(`{"text":"Success","code":0,"ackId":3}`))
	f.Add(200, []byte(`{"acks":{"0":true,"1":false}}`))
	f.Add(503, []byte(`{"text":"Server is busy","code":9}`))
	f.Add(400, []byte(`{"text":"Invalid data format","code":6,"invalid-event-number":2}`))
	f.Add(403, []byte(`{"text":"Invalid token `+testToken+`","code":4}`))
	f.Add(502, []byte("<html>\n<body>Bad gateway "+testToken+"</body></html>"))
	f.Add(200, []byte("\xff\xfe not json"))
	f.Fuzz(func(t *testing.T, status int, raw []byte) {
		var out struct {
			AckID *int            `json:"ackId"`
			Acks  map[string]bool `json:"acks"`
		}
		err := answer(status, raw, secret.Value(testToken), &out)
		if err == nil {
			return
		}
		msg := err.Error()
		if strings.Contains(msg, testToken) {
			t.Fatalf("the error shows the token: %s", msg)
		}
		if strings.ContainsAny(msg, "\n\r\x00") {
			t.Fatalf("the error is not one printable line: %q", msg)
		}
	})
}
