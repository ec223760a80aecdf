package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// countingProvider mints numbered tokens valid for ttl and records what it
// is asked to release.
type countingProvider struct {
	name      string // prefixes the tokens, subjects and lease IDs it mints
	now       func() time.Time
	ttl       time.Duration
	mints     atomic.Int32
	released  atomic.Int32
	block     chan struct{} // if set, Mint waits for it, or for ctx to end unless ignoreCtx
	ignoreCtx bool
	entered   chan struct{} // if set, Mint signals on it (without blocking) when called
	err       error

	mu           sync.Mutex
	releasedCred []Credential
}

func (p *countingProvider) Mint(ctx context.Context, req Request) (Credential, error) {
	if p.entered != nil {
		select {
		case p.entered <- struct{}{}:
		default:
		}
	}
	if p.block != nil {
		if p.ignoreCtx {
			<-p.block
		} else {
			select {
			case <-p.block:
			case <-ctx.Done():
				return Credential{}, ctx.Err()
			}
		}
	}
	if p.err != nil {
		return Credential{}, p.err
	}
	n := p.mints.Add(1)
	return Credential{
		Token:     secret.Value(fmt.Sprintf("%stoken-%d", p.name, n)),
		ExpiresAt: p.now().Add(p.ttl),
		Subject:   p.name + "sa-" + req.Namespace,
		LeaseID:   fmt.Sprintf("%slease-%d", p.name, n),
	}, nil
}

func (p *countingProvider) ValidateOptions(map[string]string) error { return nil }

func (p *countingProvider) Release(_ context.Context, c Credential) error {
	p.released.Add(1)
	p.mu.Lock()
	defer p.mu.Unlock()
	p.releasedCred = append(p.releasedCred, c)
	return nil
}

// releasedCreds returns what Release was given, in order.
func (p *countingProvider) releasedCreds() []Credential {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]Credential(nil), p.releasedCred...)
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
	return newReplica(t, mr, clk, "", nil)
}

// newReplica returns a fixture whose provider prefixes what it mints with
// name. configure, if not nil, adjusts the Config before New.
func newReplica(t *testing.T, mr *miniredis.Miniredis, clk *clock, name string, configure func(*Config)) *fixture {
	t.Helper()
	p := &countingProvider{name: name, now: clk.Now, ttl: time.Hour}
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr(), MaxRetries: -1})
	t.Cleanup(func() { rdb.Close() })
	f := &fixture{p: p, mr: mr, clock: clk, audit: &audittest.Log{}}
	cfg := Config{
		Redis: rdb, Audit: f.audit, Now: clk.Now,
		Providers: map[string]Provider{ProviderKey("demo", "counting"): p},
	}
	if configure != nil {
		configure(&cfg)
	}
	var err error
	if f.b, err = New(cfg); err != nil {
		t.Fatal(err)
	}
	// Before the client closes: loads under way let their mint locks go.
	t.Cleanup(f.b.wait)
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

// TestLocalCacheForgetsWhatIsNoLongerValid: a replica that never releases
// a grant (another replica ended it) does not keep its credential once it
// is no longer valid: the next credential stored drops it.
func TestLocalCacheForgetsWhatIsNoLongerValid(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	ctx := context.Background()
	for _, id := range []string{"g-1", "g-2"} {
		req := f.request(10 * time.Minute)
		req.GrantID = id
		if _, err := f.b.Credential(ctx, req); err != nil {
			t.Fatal(err)
		}
	}
	f.clock.Advance(10 * time.Minute)
	f.mr.FastForward(10 * time.Minute)
	req := f.request(10 * time.Minute)
	req.GrantID = "g-3"
	if _, err := f.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.b.wait()
	f.b.mu.Lock()
	defer f.b.mu.Unlock()
	var keys []string
	for k := range f.b.local {
		keys = append(keys, k)
	}
	if len(keys) != 1 || !strings.HasPrefix(keys[0], "g-3:") {
		t.Errorf("local credentials after the first two grants expired: %q, want only g-3's", keys)
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
	a.b.wait()              // its mint lock let go
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
	f.b.wait() // its mint lock let go
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

// TestMintOutlivesTheCallerThatStartedIt: the caller whose request started
// a mint goes away while the provider is still minting. Another caller
// waiting for the same credential still gets it, it is shared in Redis and
// not revoked, and later calls are served from the cache.
func TestMintOutlivesTheCallerThatStartedIt(t *testing.T) {
	tests := []struct {
		name      string
		ignoreCtx bool
	}{
		{name: "provider honours cancellation"},
		{name: "provider ignores cancellation", ignoreCtx: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, miniredis.RunT(t), newClock())
			f.p.block, f.p.entered, f.p.ignoreCtx = make(chan struct{}), make(chan struct{}, 1), tt.ignoreCtx
			unblock := sync.OnceFunc(func() { close(f.p.block) })
			t.Cleanup(unblock)
			req := f.request(30 * time.Minute)

			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			first := make(chan error, 1)
			go func() {
				_, err := f.b.Credential(ctx, req)
				first <- err
			}()
			<-f.p.entered
			type result struct {
				cred Credential
				err  error
			}
			second := make(chan result, 1)
			go func() {
				c, err := f.b.Credential(context.Background(), req)
				second <- result{c, err}
			}()
			time.Sleep(20 * time.Millisecond) // let the second caller join the first's mint

			cancel()
			select {
			case err := <-first:
				if !errors.Is(err, context.Canceled) {
					t.Errorf("first caller: Credential() error = %v, want context.Canceled", err)
				}
			case <-time.After(5 * time.Second):
				t.Error("first caller: Credential() still waits after its context was cancelled")
			}
			unblock()
			r := <-second
			if r.err != nil {
				t.Fatalf("second caller: Credential() error = %v", r.err)
			}
			if got := r.cred.Token.Reveal(); got != "token-1" {
				t.Errorf("second caller got %q, want token-1", got)
			}
			if n := f.p.released.Load(); n != 0 {
				t.Errorf("released %d times, want 0", n)
			}
			if diff := cmp.Diff(sharedEntry{Token: "token-1", ExpiresAt: r.cred.ExpiresAt, Subject: "sa-demo", LeaseID: "lease-1"}, sharedIn(t, f.mr, "jitproxy:cred:g-1:demo")); diff != "" {
				t.Errorf("credential in Redis (-want +got):\n%s", diff)
			}
			third, err := f.b.Credential(context.Background(), req)
			if err != nil {
				t.Fatal(err)
			}
			if third.Token.Reveal() != "token-1" || f.p.mints.Load() != 1 {
				t.Errorf("third call: minted %d times in all, tokens equal: %v; want 1 mint, served from the cache", f.p.mints.Load(), third.Token == r.cred.Token)
			}
		})
	}
}

// sharedIn returns the credential cached in Redis under key, or the zero
// entry if there is none.
func sharedIn(t *testing.T, mr *miniredis.Miniredis, key string) sharedEntry {
	t.Helper()
	var e sharedEntry
	if !mr.Exists(key) {
		return e
	}
	raw, err := mr.Get(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(raw), &e); err != nil {
		t.Fatal(err)
	}
	return e
}

// TestReleaseRevokesEveryMint: replica a's mint outlasts its mint lock, so
// replica b mints for the same grant and target too. Release revokes both
// credentials and leaves nothing in Redis.
func TestReleaseRevokesEveryMint(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	a, b := newReplica(t, mr, clk, "a-", nil), newReplica(t, mr, clk, "b-", nil)
	a.p.block, a.p.entered = make(chan struct{}), make(chan struct{}, 1)
	unblock := sync.OnceFunc(func() { close(a.p.block) })
	t.Cleanup(unblock)
	ctx := context.Background()
	req := a.request(time.Hour)

	done := make(chan error, 1)
	go func() {
		_, err := a.b.Credential(ctx, req)
		done <- err
	}()
	<-a.p.entered
	mr.FastForward(time.Minute) // a's mint lock expires while a still mints
	if _, err := b.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	unblock()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	a.b.wait() // the mint locks let go
	b.b.wait()
	if n := a.p.mints.Load() + b.p.mints.Load(); n != 2 {
		t.Fatalf("minted %d times, want 2 for this test", n)
	}

	a.b.Release(ctx, "g-1")
	type revoked struct{ Subject, LeaseID string }
	var got []revoked
	for _, c := range append(a.p.releasedCreds(), b.p.releasedCreds()...) {
		got = append(got, revoked{c.Subject, c.LeaseID})
	}
	slices.SortFunc(got, func(x, y revoked) int { return strings.Compare(x.LeaseID, y.LeaseID) })
	want := []revoked{{"a-sa-demo", "a-lease-1"}, {"b-sa-demo", "b-lease-1"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("released (-want +got):\n%s", diff)
	}
	if keys := mr.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys left after release: %v", keys)
	}
	var released []string
	for _, e := range a.audit.Events() {
		if e.Type == audit.TypeCredentialReleased {
			released = append(released, e.Credential.Subject)
		}
	}
	slices.Sort(released)
	if diff := cmp.Diff([]string{"a-sa-demo", "b-sa-demo"}, released); diff != "" {
		t.Errorf("release audit events, by subject (-want +got):\n%s", diff)
	}
}

// TestReleaseRevokesRenewedCredentials: a credential renewed before its
// expiry is revoked at grant end too, along with the one that replaced it.
func TestReleaseRevokesRenewedCredentials(t *testing.T) {
	f := newFixture(t, miniredis.RunT(t), newClock())
	f.p.ttl = 10 * time.Minute
	ctx := context.Background()
	req := f.request(time.Hour)
	if _, err := f.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(9*time.Minute + 31*time.Second) // under MinRemaining: renewed
	if _, err := f.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	f.b.wait() // the mint locks let go
	f.b.Release(ctx, "g-1")
	var got []string
	for _, c := range f.p.releasedCreds() {
		got = append(got, c.LeaseID)
	}
	slices.Sort(got)
	if diff := cmp.Diff([]string{"lease-1", "lease-2"}, got); diff != "" {
		t.Errorf("released lease IDs (-want +got):\n%s", diff)
	}
	if keys := f.mr.Keys(); len(keys) != 0 {
		t.Errorf("Redis keys left after release: %v", keys)
	}
}
