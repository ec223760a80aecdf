package file

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// benchRecords are n records of a request event's size, as the native
// encoder writes them.
func benchRecords(n int) []audit.Record {
	out := make([]audit.Record, n)
	for i := range out {
		id := fmt.Sprintf("%032x", i)
		out[i] = audit.Record{ID: id, Seq: uint64(i + 1), Type: audit.TypeRequest, Data: fmt.Appendf(nil,
			`{"version":"jitproxy.audit/v1","id":"%s","time":"2026-11-29T16:47:04.123456789Z","type":"request","request_id":"0123456789abcdef",`+
				`"caller":{"session":"s-7f3a","agent":"claude-code","user":"alice@example.com","groups":["sre","oncall"],"auth_method":"proxy-basic","source_address":"127.0.0.1:51234"},`+
				`"action":{"kind":"kubernetes","target":"prod","method":"GET","path":"/api/v1/namespaces/demo/pods","kubernetes":{"verb":"list","resource_request":true,"api_group":"","api_version":"v1","resource":"pods","subresource":"","namespace":"demo","name":""}},`+
				`"decision":{"allowed":true,"reasons":["permitted by grant g-abcdefghijklmnop"]},"grant":{"id":"g-abcdefghijklmnop","policy":"pod-reader","policy_version":"a1b2c3d4e5f6","namespace":"demo"},`+
				`"outcome":{"status":200,"bytes":1234},"duration_ms":1.734,"seq":%d,"prev_hash":"%064x","hash":"%064x"}`, id, i+1, i, i+1)}
	}
	return out
}

// BenchmarkDeliver measures the file sink delivering a batch: one write
// and one fsync.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, err := New(Config{Path: filepath.Join(b.TempDir(), "audit.jsonl"), MaxBytes: 1 << 40})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			batch := benchRecords(n)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if err := s.Deliver(ctx, batch); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// countingSink counts the batches it delivers.
type countingSink struct {
	*Sink
	batches atomic.Int64
}

func (c *countingSink) Deliver(ctx context.Context, batch []audit.Record) error {
	c.batches.Add(1)
	return c.Sink.Deliver(ctx, batch)
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkRecordToFile measures an event's whole way as the benchmark
// harness takes it: Record to a file sink's spool, then delivery to the
// file, until the last event is delivered. burst records back to back;
// paced sleeps 1ms between events, so that the delivery goroutine wakes
// for each as it does under jitproxy (which records about 3000 events a
// second at concurrency 1, two per request). A shorter sleep is not
// kept: with nothing else running, Go's timers wake a sleeping process
// with millisecond granularity, so the pace would depend on how busy the
// code measured keeps the process. cpu-ns/op is the process's CPU time
// (every goroutine, user and system) per event, which ns/op (wall time)
// does not show for work on the other core, sleeps included; batches/op
// is Deliver calls per event.
func BenchmarkRecordToFile(b *testing.B) {
	e := audit.Event{
		Type: audit.TypeRequest, RequestID: "0123456789abcdef",
		Caller: &access.Caller{Session: "s-7f3a", Agent: "claude-code", User: "alice@example.com", Groups: []string{"sre", "oncall"}, AuthMethod: "proxy-basic", SourceAddr: "127.0.0.1:51234"},
		Action: &access.Action{Kind: access.KindKubernetes, Target: "prod", Method: "GET", Path: "/api/v1/namespaces/demo/pods",
			Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		Decision: &audit.Decision{Allowed: true, Reasons: []string{"permitted by grant g-abcdefghijklmnop"}},
		Grant:    &audit.Grant{ID: "g-abcdefghijklmnop", Policy: "pod-reader", Version: "a1b2c3d4e5f6", Namespace: "demo"},
		Outcome:  &audit.Outcome{Status: 200, Bytes: 1234}, DurationMS: 1.734,
	}
	for _, sync := range []audit.SyncPolicy{audit.SyncInterval, audit.SyncAlways} {
		for _, pace := range []time.Duration{0, time.Millisecond} {
			name := "sync=" + string(sync) + "/burst"
			if pace > 0 {
				name = "sync=" + string(sync) + "/paced"
			}
			b.Run(name, func(b *testing.B) {
				dir := b.TempDir()
				fs, err := New(Config{Path: filepath.Join(dir, "audit.jsonl"), MaxBytes: 1 << 40})
				if err != nil {
					b.Fatal(err)
				}
				sink := &countingSink{Sink: fs}
				r, err := audit.New(audit.Config{Sinks: []audit.SinkConfig{{Name: "file", Sink: sink, SpoolDir: filepath.Join(dir, "spool"), Sync: sync}}})
				if err != nil {
					b.Fatal(err)
				}
				defer r.Close(time.Second)
				ctx := context.Background()
				b.ReportAllocs()
				b.ResetTimer()
				cpu := cpuTime(b)
				for range b.N {
					if err := r.Record(ctx, e); err != nil {
						b.Fatal(err)
					}
					if pace > 0 {
						time.Sleep(pace)
					}
				}
				for r.Stats()[0].Spooled > 0 {
					time.Sleep(50 * time.Microsecond)
				}
				b.StopTimer()
				b.ReportMetric(float64(cpuTime(b)-cpu)/float64(b.N), "cpu-ns/op")
				b.ReportMetric(float64(sink.batches.Load())/float64(b.N), "batches/op")
			})
		}
	}
}
