package test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/audit/sink/redisstream"
	"github.com/jitproxy/jitproxy/test/servers"
)

// TestRedisStreamRealServer delivers audit records to a real redis-server
// (durable: append-only file synced on every write) and reads them as a
// SIEM would, with a consumer group. The server is stopped in between:
// Deliver fails while it is down, and once it is restarted the same batch
// is delivered, and the group reads every record. Then the server is
// killed (SIGKILL, a crash): what Deliver reported delivered is still
// there after the restart. Last, MAXLEN ~ trims as real Redis does.
func TestRedisStreamRealServer(t *testing.T) {
	// go-redis logs every failed dial through its package-wide logger, and
	// this test fails many on purpose; nothing else in this process needs
	// that logger.
	redis.SetLogger(quietRedis{})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rs, err := servers.StartDurableRedis(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rs.Stop() })
	sink, err := redisstream.New(redisstream.Config{Addr: rs.Addr, Stream: "audit", Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	siem := redis.NewClient(&redis.Options{Addr: rs.Addr})
	t.Cleanup(func() { siem.Close() })

	// The SIEM's consumer group, reading from the start of the stream.
	if err := siem.XGroupCreateMkStream(ctx, "audit", "siem", "0").Err(); err != nil {
		t.Fatal(err)
	}
	// read takes what the group has not read yet and acknowledges it.
	read := func(t *testing.T) []string {
		t.Helper()
		res, err := siem.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: "siem", Consumer: "reader-1", Streams: []string{"audit", ">"}, Count: 10_000, Block: -1,
		}).Result()
		if err == redis.Nil {
			return nil
		}
		if err != nil {
			t.Fatal(err)
		}
		var ids, entries []string
		for _, m := range res[0].Messages {
			ids = append(ids, m.Values["id"].(string))
			entries = append(entries, m.ID)
		}
		if err := siem.XAck(ctx, "audit", "siem", entries...).Err(); err != nil {
			t.Fatal(err)
		}
		return ids
	}
	deliver := func(t *testing.T, batch []audit.Record) {
		t.Helper()
		if err := sink.Deliver(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(batches ...[]audit.Record) []string {
		var out []string
		for _, b := range batches {
			for _, r := range b {
				out = append(out, r.ID)
			}
		}
		return out
	}
	stream := audittest.NewStream("real")

	t.Run("stopped and restarted", func(t *testing.T) {
		a := stream.Next(t, 3)
		deliver(t, a)
		if diff := cmp.Diff(ids(a), read(t)); diff != "" {
			t.Fatalf("the group read (-want +got):\n%s", diff)
		}

		rs.Stop()
		b := stream.Next(t, 4)
		for range 2 {
			dctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			err := sink.Deliver(dctx, b)
			cancel()
			if err == nil {
				t.Fatal("Deliver with redis-server stopped = nil")
			}
			t.Logf("Deliver with redis-server stopped: %v", err)
		}

		if err := rs.Restart(ctx); err != nil {
			t.Fatal(err)
		}
		retry(t, func() error { return sink.Deliver(ctx, b) })
		c := stream.Next(t, 2)
		deliver(t, c)

		got := read(t)
		if diff := cmp.Diff(ids(b, c), dedupe(got)); diff != "" {
			t.Errorf("the group read after the restart (-want +got):\n%s", diff)
		}
		pending, err := siem.XPending(ctx, "audit", "siem").Result()
		if err != nil {
			t.Fatal(err)
		}
		if pending.Count != 0 {
			t.Errorf("%d entries pending in the group, want 0", pending.Count)
		}
	})

	t.Run("killed", func(t *testing.T) {
		audittest.CheckOutage(t, sink, audittest.Destination{
			Stop: func(*testing.T) { rs.Kill() },
			Start: func(t *testing.T) {
				if err := rs.Restart(ctx); err != nil {
					t.Fatal(err)
				}
			},
			IDs: func(t *testing.T) []string {
				entries, err := siem.XRange(ctx, "audit", "-", "+").Result()
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, e := range entries {
					if id := e.Values["id"].(string); strings.HasPrefix(id, "outage-") {
						got = append(got, id)
					}
				}
				return got
			},
		})
	})

	t.Run("approximate MAXLEN", func(t *testing.T) {
		trimmed, err := redisstream.New(redisstream.Config{Addr: rs.Addr, Stream: "audit-trimmed", MaxLen: 100})
		if err != nil {
			t.Fatal(err)
		}
		defer trimmed.Close()
		s := audittest.NewStream("trim")
		var last []audit.Record
		for range 20 {
			last = s.Next(t, 50)
			if err := trimmed.Deliver(ctx, last); err != nil {
				t.Fatal(err)
			}
		}
		n, err := siem.XLen(ctx, "audit-trimmed").Result()
		if err != nil {
			t.Fatal(err)
		}
		// Redis trims whole radix-tree nodes (stream-node-max-entries,
		// 100 by default): at least MaxLen stay, and fewer than a node
		// more.
		if n < 100 || n >= 200 {
			t.Errorf("XLEN = %d after 1000 entries with MAXLEN ~ 100, want 100 to 199", n)
		}
		newest, err := siem.XRevRangeN(ctx, "audit-trimmed", "+", "-", 1).Result()
		if err != nil {
			t.Fatal(err)
		}
		if newest[0].Values["id"] != last[49].ID {
			t.Errorf("the newest entry is %v, want %s", newest[0].Values["id"], last[49].ID)
		}
		t.Logf("XLEN %d after 1000 entries with MAXLEN ~ 100", n)
	})
}

// retry calls f until it returns nil, for at most 30 seconds, as the
// spooler would retry a batch.
func retry(t *testing.T, f func() error) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := f()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing after 30s: %v", err)
		}
		t.Logf("retrying: %v", err)
		time.Sleep(200 * time.Millisecond)
	}
}

// dedupe drops repeated IDs, keeping the first of each, as a consumer
// does.
func dedupe(ids []string) []string {
	var out []string
	for _, id := range ids {
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}
