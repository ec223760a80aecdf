package test

import (
	"context"
	"crypto/tls"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/sink/syslog"
	"github.com/jitproxy/jitproxy/test/servers"
)

// TestSyslogSinkAgainstRsyslog delivers sealed audit records to a real
// rsyslogd over TCP and over TLS, and reads what rsyslog parsed from its
// output file: every record once, its id, seq and type in the header and
// structured data, its data intact as the message. Then rsyslog is
// stopped (and, the second time, killed): Deliver fails; after a restart
// on the same ports the same batch is delivered again and arrives.
func TestSyslogSinkAgainstRsyslog(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	rs, err := servers.StartRsyslog(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		rs.Stop()
		if t.Failed() {
			t.Logf("rsyslogd log, last lines:\n%s", rs.Tail(20))
		}
	})
	t.Logf("rsyslogd %s on %s (TCP) and %s (TLS)", rs.Version, rs.Addr, rs.TLSAddr)

	transports := []struct {
		name string
		addr string
		tls  *tls.Config
	}{
		{"tcp", rs.Addr, nil},
		{"tls", rs.TLSAddr, rs.TLSConfig()},
	}
	sinks := map[string]*syslog.Sink{}
	for _, tr := range transports {
		s, err := syslog.New(syslog.Config{Address: tr.addr, TLS: tr.tls, Hostname: "proxy-0.example"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		sinks[tr.name] = s
	}

	chain := audit.NewChainer(nil)
	var prev string
	var seq uint64
	// batch seals n events in one stream; with large, one of them is
	// about 120 KB. A batch sent to a stopped receiver is small: a large
	// one would fail at its second write anyway, and the test is whether
	// a small one, which the kernel takes at once, fails too.
	batch := func(t *testing.T, tag string, n int, large bool) []audit.Record {
		t.Helper()
		var out []audit.Record
		for i := range n {
			seq++
			e := audit.Event{
				Version: audit.SchemaVersion, ID: fmt.Sprintf("%s-%03d", tag, i), Time: time.Now().UTC(),
				Type: audit.TypeRequest, RequestID: "req-" + tag,
				Action: &access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET", Path: "/api/v1/namespaces/démo/pods",
					Kubernetes: &access.KubernetesAction{Verb: "get", Resource: "pods", Namespace: "démo"}},
				Decision: &audit.Decision{Allowed: false, Reasons: []string{`no grant for "get pods" ✗`, `path \ with ] and "quotes"`}},
				Outcome:  &audit.Outcome{Status: 403},
			}
			if large && i == n/2 {
				e.Decision.Reasons = append(e.Decision.Reasons, strings.Repeat("långt skäl ", 10_000)) // ~120 KB
			}
			data, err := audit.EncodeNative(e, audit.Chain{Seq: seq, Prev: prev})
			if err != nil {
				t.Fatal(err)
			}
			sealed, hash, err := chain.Seal(prev, data)
			if err != nil {
				t.Fatal(err)
			}
			prev = hash
			out = append(out, audit.Record{ID: e.ID, Seq: seq, Type: e.Type, Time: e.Time, Data: sealed})
		}
		return out
	}

	// received waits until every record of want is in rsyslog's file at
	// least once and returns how often each ID is there.
	received := func(t *testing.T, want []audit.Record) map[string]int {
		t.Helper()
		byID := map[string]audit.Record{}
		for _, r := range want {
			byID[r.ID] = r
		}
		var counts map[string]int
		waitUntil(t, "rsyslog to write the records", 30*time.Second, func() bool {
			msgs, err := rs.Received()
			if err != nil {
				t.Fatal(err)
			}
			counts = map[string]int{}
			for _, m := range msgs {
				id, ok := sdParam(m.StructuredData, "id")
				if !ok {
					t.Fatalf("message without an id: %+v", m)
				}
				r, ok := byID[id]
				if !ok {
					continue
				}
				counts[id]++
				checkSyslogMessage(t, r, m)
			}
			return len(counts) == len(byID)
		})
		return counts
	}

	t.Run("deliver", func(t *testing.T) {
		for _, tr := range transports {
			recs := batch(t, "deliver-"+tr.name, 20, true)
			if err := sinks[tr.name].Deliver(ctx, recs); err != nil {
				t.Fatalf("%s: %v", tr.name, err)
			}
			for id, n := range received(t, recs) {
				if n != 1 {
					t.Errorf("%s: record %s arrived %d times", tr.name, id, n)
				}
			}
		}
	})

	for _, down := range []struct {
		name string
		stop func()
	}{
		// Not rs.Stop: the method value would bind the process running now,
		// and Restart replaces it.
		{"stopped", func() { rs.Stop() }},
		{"killed", func() { rs.Kill() }},
	} {
		t.Run("rsyslog "+down.name, func(t *testing.T) {
			before := map[string][]audit.Record{}
			for _, tr := range transports {
				before[tr.name] = batch(t, down.name+"-before-"+tr.name, 3, false)
				if err := sinks[tr.name].Deliver(ctx, before[tr.name]); err != nil {
					t.Fatalf("%s: %v", tr.name, err)
				}
				received(t, before[tr.name])
			}
			down.stop()
			failed := map[string][]audit.Record{}
			for _, tr := range transports {
				failed[tr.name] = batch(t, down.name+"-retried-"+tr.name, 5, false)
				err := sinks[tr.name].Deliver(ctx, failed[tr.name])
				if err == nil {
					t.Fatalf("%s: Deliver with rsyslog %s succeeded", tr.name, down.name)
				}
				t.Logf("%s: Deliver with rsyslog %s: %v", tr.name, down.name, err)
			}
			if err := rs.Restart(ctx); err != nil {
				t.Fatal(err)
			}
			for _, tr := range transports {
				if err := sinks[tr.name].Deliver(ctx, failed[tr.name]); err != nil {
					t.Fatalf("%s: Deliver after the restart: %v", tr.name, err)
				}
				// The batch that failed may arrive twice; the one before
				// it, delivered, only once.
				received(t, failed[tr.name])
				for id, n := range received(t, before[tr.name]) {
					if n != 1 {
						t.Errorf("%s: record %s, delivered before rsyslog was %s, arrived %d times", tr.name, id, down.name, n)
					}
				}
			}
		})
	}
}

// checkSyslogMessage compares what rsyslog parsed with the record sent.
func checkSyslogMessage(t *testing.T, r audit.Record, m servers.RsyslogMessage) {
	t.Helper()
	wantSD := fmt.Sprintf(`[jitproxy@32473 id="%s" seq="%d"]`, r.ID, r.Seq)
	got := []string{m.PRI, m.Timestamp, m.Hostname, m.AppName, m.ProcID, m.MsgID, m.StructuredData}
	want := []string{"38", r.Time.Format("2006-01-02T15:04:05.000000Z07:00"), "proxy-0.example", "jitproxy", "-", r.Type, wantSD}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("record %s: header field %d is %q, want %q", r.ID, i, got[i], want[i])
		}
	}
	if m.Msg != string(r.Data) {
		t.Errorf("record %s: message differs from the data sent:\n got %.300q\nwant %.300q", r.ID, m.Msg, r.Data)
	}
	if !strings.HasSuffix(m.Raw, " "+string(r.Data)) {
		t.Errorf("record %s: raw message %.300q does not end with the data", r.ID, m.Raw)
	}
}

// sdParam returns the value of the parameter name in sd, structured data
// as rsyslog writes it, unescaped.
func sdParam(sd, name string) (string, bool) {
	i := strings.Index(sd, " "+name+`="`)
	if i < 0 {
		return "", false
	}
	var b strings.Builder
	for s := sd[i+len(name)+3:]; s != ""; s = s[1:] {
		switch s[0] {
		case '\\':
			// Only \", \\ and \] are escapes (RFC 5424, section 6.3.3).
			if len(s) > 1 && strings.IndexByte(`"\\]`, s[1]) >= 0 {
				s = s[1:]
			}
			b.WriteByte(s[0])
		case '"':
			return b.String(), true
		default:
			b.WriteByte(s[0])
		}
	}
	return "", false
}
