package redisstream

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
)

func TestMain(m *testing.M) {
	// go-redis logs each failed dial through its package-wide logger; the
	// outage tests fail many on purpose.
	redis.SetLogger(quiet{})
	os.Exit(m.Run())
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func newSink(t *testing.T, cfg Config) *Sink {
	t.Helper()
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestNewReportsEveryProblem(t *testing.T) {
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer client.Close()
	for _, tt := range []struct {
		name string
		cfg  Config
		want []string
	}{
		{name: "nothing", cfg: Config{}, want: []string{"a client or an address is required"}},
		{name: "both", cfg: Config{Client: client, Addr: "127.0.0.1:6379"}, want: []string{"not both"}},
		{
			name: "all at once",
			cfg:  Config{Addr: "127.0.0.1:6379", PasswordFile: "/nonexistent/pw", DB: -1, MaxLen: -1, Timeout: -time.Second},
			want: []string{"password_file", "db -1", "max_len -1", "timeout -1s"},
		},
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

// commands records what a client sends.
type commands struct {
	mu   sync.Mutex
	sent [][]string
}

func (c *commands) DialHook(next redis.DialHook) redis.DialHook          { return next }
func (c *commands) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }
func (c *commands) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, cmd := range cmds {
			c.record(cmd)
		}
		return next(ctx, cmds)
	}
}

func (c *commands) record(cmd redis.Cmder) {
	if n := cmd.Name(); n == "hello" || n == "client" {
		return // the connection's set-up
	}
	var args []string
	for _, a := range cmd.Args() {
		switch v := a.(type) {
		case []byte:
			args = append(args, "<"+fmt.Sprint(len(v))+" bytes>")
		default:
			args = append(args, fmt.Sprint(v))
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, args)
}

func TestDeliverAddsEntries(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	var cmds commands
	client.AddHook(&cmds)
	s := newSink(t, Config{Client: client, Stream: "audit:test", MaxLen: 5})

	batch := audittest.NewStream("rs").Next(t, 3)
	if err := s.Deliver(t.Context(), batch); err != nil {
		t.Fatal(err)
	}
	if err := s.Deliver(t.Context(), nil); err != nil {
		t.Fatalf("Deliver(empty) = %v", err)
	}

	// One transaction: MULTI, an XADD with MAXLEN ~ per record, EXEC.
	var want [][]string
	want = append(want, []string{"multi"})
	for _, r := range batch {
		want = append(want, []string{
			"xadd", "audit:test", "maxlen", "~", "5", "*",
			"id", r.ID, "seq", fmt.Sprint(r.Seq), "type", r.Type, "time", r.Time.UTC().Format(time.RFC3339Nano),
			"data", "<" + fmt.Sprint(len(r.Data)) + " bytes>",
		})
	}
	want = append(want, []string{"exec"})
	if diff := cmp.Diff(want, cmds.sent); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}

	entries, err := client.XRange(t.Context(), "audit:test", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	var got []map[string]any
	for _, e := range entries {
		got = append(got, e.Values)
	}
	var wantValues []map[string]any
	for _, r := range batch {
		wantValues = append(wantValues, map[string]any{
			"id": r.ID, "seq": fmt.Sprint(r.Seq), "type": r.Type,
			"time": r.Time.UTC().Format(time.RFC3339Nano), "data": string(r.Data),
		})
	}
	if diff := cmp.Diff(wantValues, got); diff != "" {
		t.Errorf("stream entries (-want +got):\n%s", diff)
	}
	// The hash chain holds on what the stream holds.
	c := audit.NewChainer(nil)
	prev := ""
	for i, e := range entries {
		h, err := c.Open(prev, []byte(e.Values["data"].(string)))
		if err != nil {
			t.Fatalf("entry %d: %v", i, err)
		}
		prev = h
	}
}

func TestMaxLen(t *testing.T) {
	// miniredis trims exactly where Redis trims approximately (see the
	// real-server test for that); the stream keeps the newest.
	mr := miniredis.RunT(t)
	s := newSink(t, Config{Addr: mr.Addr(), MaxLen: 5})
	stream := audittest.NewStream("max")
	var last []audit.Record
	for range 4 {
		last = stream.Next(t, 3)
		if err := s.Deliver(t.Context(), last); err != nil {
			t.Fatal(err)
		}
	}
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	entries, err := client.XRange(t.Context(), DefaultStream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 5 || entries[4].Values["id"] != last[2].ID {
		t.Errorf("%d entries ending with %v, want 5 ending with %s", len(entries), entries[len(entries)-1].Values["id"], last[2].ID)
	}
}

func TestDefaultsAndOwnClient(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.RequireUserAuth("audit", "pw-canary-31f0")
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte("pw-canary-31f0\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := newSink(t, Config{Addr: mr.Addr(), Username: "audit", PasswordFile: pw, DB: 2})
	if s.Stream() != DefaultStream || s.maxLen != DefaultMaxLen || s.timeout != 5*time.Second {
		t.Errorf("stream %q max_len %d timeout %s, want the defaults", s.Stream(), s.maxLen, s.timeout)
	}
	if err := s.Deliver(t.Context(), audittest.NewStream("own").Next(t, 1)); err != nil {
		t.Fatal(err)
	}
	if entries, _ := mr.DB(2).Stream(DefaultStream); len(entries) != 1 {
		t.Errorf("db 2 holds %d entries, want 1", len(entries))
	}
}

func TestCloseLeavesAGivenClientOpen(t *testing.T) {
	mr := miniredis.RunT(t)
	client := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer client.Close()
	s, err := New(Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := client.Ping(t.Context()).Err(); err != nil {
		t.Errorf("the given client after Close: %v", err)
	}
}

func TestWrongType(t *testing.T) {
	mr := miniredis.RunT(t)
	mr.Set(DefaultStream, "not a stream")
	s := newSink(t, Config{Addr: mr.Addr()})
	err := s.Deliver(t.Context(), audittest.NewStream("wt").Next(t, 2))
	if err == nil || !strings.Contains(err.Error(), "WRONGTYPE") {
		t.Fatalf("Deliver = %v, want WRONGTYPE", err)
	}
}

// TestReturnsWhenContextEnds: a server that takes the connection and never
// answers holds Deliver only until its context ends, even with a client
// whose own read timeout is long.
func TestReturnsWhenContextEnds(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	client := redis.NewClient(&redis.Options{Addr: l.Addr().String(), ReadTimeout: 1500 * time.Millisecond, MaxRetries: -1, Protocol: 2})
	defer client.Close()
	s, err := New(Config{Client: client})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := s.Deliver(ctx, audittest.NewStream("hang").Next(t, 1)); err == nil {
		t.Fatal("Deliver to a silent server = nil")
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Deliver took %s with a 300ms context", took)
	}
	// Close waits for the abandoned transaction (the client's read
	// timeout ends it).
	s.Close()
	mu.Lock()
	for _, c := range conns {
		c.Close()
	}
	mu.Unlock()
}

func TestOutage(t *testing.T) {
	mr := miniredis.RunT(t)
	s := newSink(t, Config{Addr: mr.Addr(), Timeout: time.Second})
	audittest.CheckOutage(t, s, audittest.Destination{
		Stop: func(*testing.T) { mr.Close() },
		Start: func(t *testing.T) {
			if err := mr.Restart(); err != nil {
				t.Fatal(err)
			}
		},
		IDs: func(t *testing.T) []string {
			entries, err := mr.Stream(DefaultStream)
			if err != nil {
				t.Fatal(err)
			}
			var ids []string
			for _, e := range entries {
				for i := 0; i+1 < len(e.Values); i += 2 {
					if e.Values[i] == "id" {
						ids = append(ids, e.Values[i+1])
					}
				}
			}
			return ids
		},
	})
}
