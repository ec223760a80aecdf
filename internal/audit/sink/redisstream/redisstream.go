// Package redisstream is the audit sink that adds records to a Redis
// stream, for consumers that read it with consumer groups (XREADGROUP).
//
// Each record becomes one stream entry, added with
//
//	XADD KEY MAXLEN ~ N * id ID seq SEQ type TYPE time TIME data JSON
//
// where id is the event's ID, seq the record's sequence number in
// decimal, type the event type, time the event's time (RFC 3339 with
// nanoseconds, UTC) and data the record's JSON as encoded (so its hash
// chain can be checked). The entry IDs are Redis's own.
//
// # What "delivered" means
//
// A batch is one MULTI/EXEC transaction (MULTI, an XADD per record,
// EXEC, sent in one round trip). Deliver returns nil when EXEC answers
// with an entry ID for every XADD: the records are in the stream on the
// Redis primary, in its memory and in its append-only file as far as its
// appendfsync policy goes. Replicas are not waited for: a failover just
// after may lose the batch (Redis's own limit, as for any write).
//
// Redis runs a transaction's commands together, with no other client's
// command between them, and passes them on to the AOF and replicas
// together, so a batch is added whole or not at all. If the connection
// breaks, the timeout passes or ctx ends after EXEC reached Redis but
// before its answer came back, the batch may be in the stream though
// Deliver returned an error; it is then added again. Consumers must drop
// duplicates by the id field. (A transaction does not roll back: an XADD
// that fails inside EXEC, which happens only when the key holds another
// type, leaves the others added and Deliver returns its error.)
//
// MAXLEN ~ N trims the stream's oldest entries once it holds more than
// about N (Redis trims whole nodes of its radix tree, so a little more
// than N stay). Trimming does not wait for consumer groups: records a
// consumer has not read when they fall off are lost to it. N must be
// far more than consumers ever lag behind.
//
// With Redis Cluster, the stream is one key on one shard; the transaction
// touches only that key, as Cluster requires.
package redisstream

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// Defaults.
const (
	DefaultStream = "jitproxy:audit"
	DefaultMaxLen = 1_000_000
)

// Config configures a Sink. Give Client, or Addr and what goes with it.
type Config struct {
	// Client is the Redis client: a single server, Sentinel (failover) or
	// Cluster, as redis.NewUniversalClient makes them. The Sink uses it
	// and does not close it.
	Client redis.UniversalClient
	// Addr is the host:port of a single Redis server, used when Client is
	// nil: New builds a client that Close closes.
	Addr string
	// Username, PasswordFile and DB go with Addr. The password is read
	// from the file once, by New.
	Username     string
	PasswordFile string
	DB           int
	// Stream is the stream's key; default DefaultStream.
	Stream string
	// MaxLen is the approximate most entries the stream keeps (MAXLEN ~);
	// default DefaultMaxLen.
	MaxLen int64
	// Timeout bounds each Deliver; default 5s.
	Timeout time.Duration
}

// Sink adds batches to a Redis stream. It is safe for concurrent use.
type Sink struct {
	client  redis.UniversalClient
	owned   bool // built by New, closed by Close
	stream  string
	maxLen  int64
	timeout time.Duration

	// inflight counts the transactions Deliver stopped waiting for (its
	// ctx ended) that still run; Close waits for them.
	inflight sync.WaitGroup
}

var _ audit.Sink = (*Sink)(nil)

// New checks cfg and returns a Sink. With Addr it builds a client (and
// reads PasswordFile) but does not connect: the first Deliver does.
func New(cfg Config) (*Sink, error) {
	var errs []error
	switch {
	case cfg.Client == nil && cfg.Addr == "":
		errs = append(errs, errors.New("a client or an address is required"))
	case cfg.Client != nil && (cfg.Addr != "" || cfg.Username != "" || cfg.PasswordFile != "" || cfg.DB != 0):
		errs = append(errs, errors.New("give a client or an address (with username, password_file, db), not both"))
	}
	var password string
	if cfg.PasswordFile != "" {
		b, err := os.ReadFile(cfg.PasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("password_file: %w", err))
		}
		password = strings.TrimSpace(string(b))
	}
	if cfg.DB < 0 {
		errs = append(errs, fmt.Errorf("db %d: must not be negative", cfg.DB))
	}
	if cfg.MaxLen < 0 {
		errs = append(errs, fmt.Errorf("max_len %d: must not be negative", cfg.MaxLen))
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", cfg.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("redis stream sink: %w", err)
	}
	if cfg.Stream == "" {
		cfg.Stream = DefaultStream
	}
	if cfg.MaxLen == 0 {
		cfg.MaxLen = DefaultMaxLen
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 5 * time.Second
	}
	s := &Sink{client: cfg.Client, stream: cfg.Stream, maxLen: cfg.MaxLen, timeout: cfg.Timeout}
	if s.client == nil {
		s.client = redis.NewUniversalClient(&redis.UniversalOptions{
			Addrs: []string{cfg.Addr}, Username: cfg.Username, Password: password, DB: cfg.DB,
			ContextTimeoutEnabled: true,
		})
		s.owned = true
	}
	return s, nil
}

// Stream returns the stream's key.
func (s *Sink) Stream() string { return s.stream }

// Deliver adds batch to the stream in one MULTI/EXEC transaction and
// returns nil once Redis answered EXEC with an entry for every record
// (see the package doc for what that holds and what a failure leaves).
// It returns an error if the transaction fails, the timeout passes or ctx
// ends; the batch is then to be delivered again, and the stream may hold
// some records twice. It returns when ctx ends even if the client's own
// timeouts are longer (the transaction's result is then ignored). An
// empty batch sends nothing and returns nil.
func (s *Sink) Deliver(ctx context.Context, batch []audit.Record) error {
	if len(batch) == 0 {
		return nil
	}
	tctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	done := make(chan error, 1)
	s.inflight.Add(1)
	go func() {
		defer s.inflight.Done()
		done <- s.add(tctx, batch)
	}()
	var err error
	select {
	case err = <-done:
	case <-tctx.Done():
		err = tctx.Err()
	}
	if err != nil && tctx.Err() != nil && ctx.Err() == nil {
		err = fmt.Errorf("no answer within the timeout of %s: %w", s.timeout, err)
	}
	if err != nil {
		return fmt.Errorf("redisstream: add %d records (seq %d-%d) to stream %s: %w", len(batch), batch[0].Seq, batch[len(batch)-1].Seq, s.stream, err)
	}
	return nil
}

func (s *Sink) add(ctx context.Context, batch []audit.Record) error {
	cmds, err := s.client.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for _, r := range batch {
			p.XAdd(ctx, &redis.XAddArgs{
				Stream: s.stream,
				MaxLen: s.maxLen,
				Approx: true,
				ID:     "*",
				Values: []any{
					"id", r.ID,
					"seq", strconv.FormatUint(r.Seq, 10),
					"type", r.Type,
					"time", r.Time.UTC().Format(time.RFC3339Nano),
					"data", r.Data,
				},
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range cmds {
		if c.Err() != nil {
			return c.Err()
		}
	}
	return nil
}

// Close waits for transactions Deliver stopped waiting for, then closes
// the client if New built it. The Sink must not be used after.
func (s *Sink) Close() error {
	s.inflight.Wait()
	if s.owned {
		return s.client.Close()
	}
	return nil
}
