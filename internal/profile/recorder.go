package profile

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Config configures a Recorder.
type Config struct {
	Redis redis.UniversalClient // required
	// KeyPrefix is put before every key, as jit's: "jitproxy:" for example.
	KeyPrefix string
	// FlushInterval is how often what was recorded in process is written
	// to Redis; default 1s.
	FlushInterval time.Duration
	// MaxPending caps the distinct (grant, action) pairs held in process
	// between flushes; uses beyond it are dropped (and logged). Default
	// 10000.
	MaxPending int
	// Timeout bounds one flush or read; default 5s.
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Recorder records the uses of learning grants: in process on the request
// path (Record), written to Redis in batches (Run). It is safe for
// concurrent use.
type Recorder struct {
	cfg Config

	mu      sync.Mutex
	pending map[pendingKey]*pendingUse
	dropped int
}

type pendingKey struct{ grant, key string }

type pendingUse struct {
	n           int64
	first, last time.Time
	expires     time.Time
}

// New returns a Recorder; Redis is required.
func New(cfg Config) (*Recorder, error) {
	if cfg.Redis == nil {
		return nil, errors.New("profile recorder: Redis is required")
	}
	if cfg.FlushInterval <= 0 {
		cfg.FlushInterval = time.Second
	}
	if cfg.MaxPending <= 0 {
		cfg.MaxPending = 10000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Recorder{cfg: cfg, pending: map[pendingKey]*pendingUse{}}, nil
}

func (r *Recorder) key(grant string) string { return r.cfg.KeyPrefix + "profile:" + grant }

// Record notes one use of action a under the learning grant grant, which
// ends at expires. It never blocks on Redis: it counts in process, and Run
// writes the counts. An action of no known kind is ignored.
func (r *Recorder) Record(grant string, expires time.Time, a *access.Action) {
	u, ok := UseOf(a)
	if !ok {
		return
	}
	k := pendingKey{grant, u.Key()}
	now := r.cfg.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	p := r.pending[k]
	if p == nil {
		if len(r.pending) >= r.cfg.MaxPending {
			r.dropped++
			return
		}
		p = &pendingUse{first: now, expires: expires}
		r.pending[k] = p
	}
	p.n++
	p.last = now
}

// Run writes what was recorded to Redis every FlushInterval until ctx
// ends, and once more then. It returns nil.
func (r *Recorder) Run(ctx context.Context) error {
	t := time.NewTicker(r.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			r.Flush(context.WithoutCancel(ctx))
			return nil
		case <-t.C:
			r.Flush(ctx)
		}
	}
}

// Flush writes what was recorded since the last flush to Redis, in one
// pipeline. If Redis fails, those counts are lost, and the error logged.
func (r *Recorder) Flush(ctx context.Context) {
	r.mu.Lock()
	batch, dropped := r.pending, r.dropped
	r.pending, r.dropped = map[pendingKey]*pendingUse{}, 0
	r.mu.Unlock()
	if dropped > 0 {
		r.cfg.Logger.Warn("profile uses dropped: too many distinct actions between flushes", "dropped", dropped)
	}
	if len(batch) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	expires := map[string]time.Time{}
	pipe := r.cfg.Redis.Pipeline()
	for k, p := range batch {
		key := r.key(k.grant)
		pipe.HIncrBy(ctx, key, "c:"+k.key, p.n)
		pipe.HSetNX(ctx, key, "f:"+k.key, p.first.UnixMilli())
		// Replicas may flush out of order: last use is kept only when later.
		pipe.Eval(ctx, setMaxScript, []string{key}, "l:"+k.key, p.last.UnixMilli())
		if p.expires.After(expires[key]) {
			expires[key] = p.expires
		}
	}
	for key, e := range expires {
		pipe.ExpireAt(ctx, key, e.Add(Retention))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		r.cfg.Logger.Error("write learning profiles; these uses are lost", "uses", len(batch), "err", err)
	}
}

// setMaxScript sets hash field ARGV[1] of KEYS[1] to ARGV[2] unless it holds
// a larger number.
const setMaxScript = `local v = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if tonumber(ARGV[2]) > v then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 0`

// ErrNotFound is the error of Read for a grant with no recording.
var ErrNotFound = errors.New("no profile recorded")

// Read returns the profile of grant, its uses sorted by key. A grant
// without one is ErrNotFound; fields Key could not have written are
// skipped.
func (r *Recorder) Read(ctx context.Context, grant string) (*Profile, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	h, err := r.cfg.Redis.HGetAll(ctx, r.key(grant)).Result()
	if err != nil {
		return nil, fmt.Errorf("read profile of grant %s: %w", grant, err)
	}
	if len(h) == 0 {
		return nil, fmt.Errorf("grant %s: %w", grant, ErrNotFound)
	}
	return fromHash(grant, h), nil
}

// fromHash decodes a profile's hash.
func fromHash(grant string, h map[string]string) *Profile {
	p := &Profile{Grant: grant, Uses: []Use{}}
	for f, v := range h {
		k, ok := strings.CutPrefix(f, "c:")
		if !ok {
			continue
		}
		u, err := ParseKey(k)
		if err != nil {
			continue
		}
		u.Count, _ = strconv.ParseInt(v, 10, 64)
		u.First = ms(h["f:"+k])
		u.Last = ms(h["l:"+k])
		p.Uses = append(p.Uses, u)
	}
	slices.SortFunc(p.Uses, func(a, b Use) int { return strings.Compare(a.Key(), b.Key()) })
	return p
}

func ms(s string) time.Time {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n).UTC()
}
