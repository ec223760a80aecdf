package broker

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// countingProvider mints numbered tokens valid for ttl.
type countingProvider struct {
	now      func() time.Time
	ttl      time.Duration
	mints    atomic.Int32
	released atomic.Int32
	block    chan struct{} // if set, Mint waits for it
	err      error
}

func (p *countingProvider) Mint(ctx context.Context, req Request) (Credential, error) {
	if p.block != nil {
		<-p.block
	}
	if p.err != nil {
		return Credential{}, p.err
	}
	n := p.mints.Add(1)
	return Credential{Token: secret.Value(fmt.Sprintf("token-%d", n)), ExpiresAt: p.now().Add(p.ttl), Subject: "sa-" + req.Namespace}, nil
}

func (p *countingProvider) ValidateOptions(map[string]string) error { return nil }

func (p *countingProvider) Release(context.Context, Credential) error {
	p.released.Add(1)
	return nil
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type fixture struct {
	b     *Broker
	p     *countingProvider
	mr    *miniredis.Miniredis
	clock *clock
	audit *audittest.Log
}

func newFixture(t *testing.T, mr *miniredis.Miniredis, clk *clock) *fixture {
	t.Helper()
	p := &countingProvider{now: clk.Now, ttl: time.Hour}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	f := &fixture{p: p, mr: mr, clock: clk, audit: &audittest.Log{}}
	var err error
	f.b, err = New(Config{
		Redis: rdb, Audit: f.audit, Now: clk.Now,
		Providers: map[string]Provider{ProviderKey("demo", "counting"): p},
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)} }

func (f *fixture) request(grantTTL time.Duration) Request {
	return Request{GrantID: "g-1", GrantExpiresAt: f.clock.Now().Add(grantTTL), Target: "demo", Namespace: "demo", Provider: "counting"}
}

func TestConcurrentFirstRequestsMintOnce(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	f.p.block = make(chan struct{})
	req := f.request(30 * time.Minute)
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	for i := range tokens {
		wg.Go(func() {
			c, err := f.b.Credential(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = c.Token.Reveal()
		})
	}
	time.Sleep(20 * time.Millisecond) // let the callers pile up on the flight
	close(f.p.block)
	wg.Wait()
	if n := f.p.mints.Load(); n != 1 {
		t.Errorf("minted %d times, want 1", n)
	}
	for i, tok := range tokens {
		if tok != "token-1" {
			t.Errorf("caller %d got %q", i, tok)
		}
	}
	if diff := cmp.Diff([]string{audit.TypeCredentialMinted}, f.audit.Types()); diff != "" {
		t.Errorf("audit events (-want +got):\n%s", diff)
	}
}

func TestReplicaUsesSharedCredential(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	a, b := newFixture(t, mr, clk), newFixture(t, mr, clk)
	req := a.request(30 * time.Minute)
	ca, err := a.b.Credential(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	cb, err := b.b.Credential(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	if ca.Token != cb.Token || b.p.mints.Load() != 0 {
		t.Errorf("replica minted %d times; tokens equal: %v", b.p.mints.Load(), ca.Token == cb.Token)
	}
}

func TestCacheNeverOutlivesGrant(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	req := f.request(10 * time.Minute) // the token lives an hour
	if _, err := f.b.Credential(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	key := "jitproxy:cred:g-1:demo"
	if ttl := f.mr.TTL(key); ttl <= 0 || ttl > 10*time.Minute {
		t.Errorf("Redis TTL = %s, want at most the grant's 10m", ttl)
	}
	f.clock.Advance(10 * time.Minute)
	f.mr.FastForward(10 * time.Minute)
	if _, err := f.b.Credential(context.Background(), req); err == nil || !strings.Contains(err.Error(), "grant has expired") {
		t.Errorf("Credential() after grant expiry = %v, want an error", err)
	}
}

func TestCredentialRenewedBeforeItsExpiry(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	f.p.ttl = 10 * time.Minute
	req := f.request(time.Hour)
	ctx := context.Background()
	first, _ := f.b.Credential(ctx, req)
	f.clock.Advance(9*time.Minute + 31*time.Second) // 29s left: under MinRemaining
	second, err := f.b.Credential(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if first.Token == second.Token || f.p.mints.Load() != 2 {
		t.Errorf("mints = %d; want a fresh credential once under MinRemaining", f.p.mints.Load())
	}
}

func TestRelease(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	a, b := newFixture(t, mr, clk), newFixture(t, mr, clk)
	ctx := context.Background()
	req := a.request(time.Hour)
	if _, err := a.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	b.b.Release(ctx, "g-1") // any replica may reclaim
	if a.p.released.Load()+b.p.released.Load() != 1 {
		t.Errorf("released %d times, want 1", a.p.released.Load()+b.p.released.Load())
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys left after release: %v", keys)
	}
	if diff := cmp.Diff([]string{audit.TypeCredentialReleased}, b.audit.Types()); diff != "" {
		t.Errorf("audit (-want +got):\n%s", diff)
	}
	// The releasing replica forgot it; the other would re-read Redis only
	// after its own Release, which OnGrantEnd triggers on the replica that
	// ended the grant. Its data plane no longer asks: the grant is over.
	b.b.Release(ctx, "g-1")
	if b.p.released.Load() != 1 {
		t.Error("a second release revoked again")
	}
}

func TestFailsClosed(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(f *fixture, req *Request)
		wantErr string
	}{
		{name: "redis down", setup: func(f *fixture, _ *Request) { f.mr.Close() }, wantErr: "read credential cache"},
		{name: "mint fails", setup: func(f *fixture, _ *Request) { f.p.err = errors.New("apiserver said no") }, wantErr: "mint counting credential: apiserver said no"},
		{name: "unknown provider", setup: func(_ *fixture, req *Request) { req.Provider = "vault" }, wantErr: "no such credential provider"},
		{name: "credential too short-lived", setup: func(f *fixture, _ *Request) { f.p.ttl = 10 * time.Second }, wantErr: "too soon to use"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, miniredis.RunT(t), newClock())
			req := f.request(time.Hour)
			tt.setup(f, &req)
			c, err := f.b.Credential(context.Background(), req)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Credential() error = %v, want %q", err, tt.wantErr)
			}
			if !c.Token.IsZero() {
				t.Error("a failed call returned a token")
			}
		})
	}
}

func BenchmarkCredentialCached(b *testing.B) {
	mr := miniredis.RunT(b)
	clk := newClock()
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	defer rdb.Close()
	p := &countingProvider{now: clk.Now, ttl: time.Hour}
	br, _ := New(Config{Redis: rdb, Audit: &audittest.Log{}, Now: clk.Now, Providers: map[string]Provider{ProviderKey("demo", "counting"): p}})
	req := Request{GrantID: "g-1", GrantExpiresAt: clk.Now().Add(time.Hour), Target: "demo", Provider: "counting"}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := br.Credential(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
}

// TestReleaseAfterTheCacheExpired: the cached token expires with its grant,
// but the grant's end is handled after that; what was minted must still be
// revoked then.
func TestReleaseAfterTheCacheExpired(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	ctx := context.Background()
	req := f.request(5 * time.Second)
	if _, err := f.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(6 * time.Second)
	f.mr.FastForward(6 * time.Second) // the token cache entry is gone
	f.b.Release(ctx, "g-1")
	if n := f.p.released.Load(); n != 1 {
		t.Errorf("released %d times after the cache entry expired, want 1", n)
	}
	if keys := f.mr.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys left after release: %v", keys)
	}
}
