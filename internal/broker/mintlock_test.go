package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/redistest"
)

// TestReplicasMintOnce: two replicas get their first request for one grant
// and target at once; one mints, the other waits for it and gets the same
// credential.
func TestReplicasMintOnce(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	replicas := []*fixture{newReplica(t, mr, clk, "a-", nil), newReplica(t, mr, clk, "b-", nil)}
	block, entered := make(chan struct{}), make(chan struct{}, len(replicas))
	unblock := sync.OnceFunc(func() { close(block) })
	t.Cleanup(unblock)
	for _, f := range replicas {
		f.p.block, f.p.entered = block, entered
	}
	req := replicas[0].request(30 * time.Minute)

	tokens := make([]string, len(replicas))
	var wg sync.WaitGroup
	for i, f := range replicas {
		wg.Go(func() {
			c, err := f.b.Credential(context.Background(), req)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = c.Token.Reveal()
		})
	}
	<-entered
	time.Sleep(50 * time.Millisecond) // give the other replica time to reach its own mint, if it would
	unblock()
	wg.Wait()

	var mints int32
	for _, f := range replicas {
		mints += f.p.mints.Load()
	}
	if mints != 1 {
		t.Errorf("minted %d times across replicas, want 1", mints)
	}
	if tokens[0] == "" || tokens[0] != tokens[1] {
		t.Errorf("replicas got different tokens (or none): equal: %v", tokens[0] == tokens[1])
	}
}

// TestReplicaMintsWhenTheLockHolderFails: the replica holding the mint lock
// fails to mint and lets the lock go; the waiting replica then mints itself.
func TestReplicaMintsWhenTheLockHolderFails(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	a, b := newReplica(t, mr, clk, "a-", nil), newReplica(t, mr, clk, "b-", nil)
	a.p.block, a.p.entered, a.p.err = make(chan struct{}), make(chan struct{}, 1), errors.New("vault is sealed")
	unblock := sync.OnceFunc(func() { close(a.p.block) })
	t.Cleanup(unblock)
	req := a.request(30 * time.Minute)

	errA := make(chan error, 1)
	go func() {
		_, err := a.b.Credential(context.Background(), req)
		errA <- err
	}()
	<-a.p.entered
	type result struct {
		cred Credential
		err  error
	}
	resB := make(chan result, 1)
	go func() {
		c, err := b.b.Credential(context.Background(), req)
		resB <- result{c, err}
	}()
	time.Sleep(20 * time.Millisecond) // let b find a's lock
	unblock()

	if err := <-errA; err == nil || !strings.Contains(err.Error(), "vault is sealed") {
		t.Errorf("replica a: Credential() error = %v, want the provider's", err)
	}
	r := <-resB
	if r.err != nil {
		t.Fatalf("replica b: Credential() error = %v", r.err)
	}
	if got := r.cred.Token.Reveal(); got != "b-token-1" {
		t.Errorf("replica b got %q, want its own b-token-1", got)
	}
}

// TestWaitingForAnotherReplicaFailsClosed: a replica that finds the mint
// lock held never mints on its own while the lock stands, and Redis
// failing while it waits is an error.
func TestWaitingForAnotherReplicaFailsClosed(t *testing.T) {
	tests := []struct {
		name        string
		mintTimeout time.Duration // bounds the wait too
		during      func(mr *miniredis.Miniredis)
		wantErr     string
	}{
		{
			name:        "the lock holder never shares",
			mintTimeout: 100 * time.Millisecond,
			during:      func(*miniredis.Miniredis) {},
			wantErr:     "wait for another replica's credential: context deadline exceeded",
		},
		{
			name:        "redis fails while waiting",
			mintTimeout: 10 * time.Second,
			during:      func(mr *miniredis.Miniredis) { mr.SetError("LOADING Redis is loading the dataset in memory") },
			wantErr:     "read credential cache",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			f := newReplica(t, mr, newClock(), "", func(c *Config) {
				c.MintTimeout, c.RedisTimeout = tt.mintTimeout, 500*time.Millisecond
			})
			if err := mr.Set("jitproxy:mint-lock:g-1:demo", "another replica's token"); err != nil {
				t.Fatal(err)
			}
			errc := make(chan error, 1)
			go func() {
				_, err := f.b.Credential(context.Background(), f.request(time.Hour))
				errc <- err
			}()
			time.Sleep(20 * time.Millisecond)
			tt.during(mr)
			if err := <-errc; err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Credential() error = %v, want %q", err, tt.wantErr)
			}
			if n := f.p.mints.Load(); n != 0 {
				t.Errorf("minted %d times without the lock, want 0", n)
			}
		})
	}
}

// holdUnlock is a go-redis hook that holds the mint lock's release (its
// WATCH) until release is closed, and signals it on entered.
type holdUnlock struct {
	entered chan string
	release chan struct{}
}

func (h *holdUnlock) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *holdUnlock) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if name := cmd.Name(); name == "watch" {
			h.entered <- name
			<-h.release
		}
		return next(ctx, cmd)
	}
}

func (h *holdUnlock) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// TestMintLockLetGoAfterTheCallersHaveTheCredential: the callers of a
// mint get its credential without waiting for the mint lock's release
// (round trips to Redis), which follows; a failed mint lets
// the lock go before its callers get the error, so that another replica
// may mint at once.
func TestMintLockLetGoAfterTheCallersHaveTheCredential(t *testing.T) {
	const lockKey = "jitproxy:mint-lock:g-1:demo"
	t.Run("minted", func(t *testing.T) {
		mr := miniredis.RunT(t)
		h := &holdUnlock{entered: make(chan string, 1), release: make(chan struct{})}
		release := sync.OnceFunc(func() { close(h.release) })
		t.Cleanup(release)
		f := newReplica(t, mr, newClock(), "", func(c *Config) { c.Redis.(*redis.Client).AddHook(h) })
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()

		c, err := f.b.Credential(ctx, f.request(time.Hour))
		if err != nil {
			t.Fatalf("Credential() error = %v, want the credential while the lock's release is held", err)
		}
		if got := c.Token.Reveal(); got != "token-1" {
			t.Errorf("Credential() = %q, want token-1", got)
		}
		if !mr.Exists(lockKey) {
			t.Errorf("mint lock gone before its release ran")
		}
		<-h.entered
		release()
		f.b.wait()
		if mr.Exists(lockKey) {
			t.Errorf("mint lock still held after the load ended")
		}
	})
	t.Run("mint failed", func(t *testing.T) {
		mr := miniredis.RunT(t)
		f := newReplica(t, mr, newClock(), "", nil)
		f.p.err = errors.New("vault is sealed")
		if _, err := f.b.Credential(context.Background(), f.request(time.Hour)); err == nil {
			t.Fatal("Credential() succeeded, want the provider's error")
		}
		if mr.Exists(lockKey) {
			t.Errorf("mint lock still held when the failed mint's caller got its error")
		}
	})
}

// TestFirstMintRoundTrips: a grant's first credential costs its callers
// two round trips to Redis, the lookup of a shared credential together
// with the mint lock, and the transaction that shares it; the lock's
// release follows. A replica that finds the credential shared lets go of
// the lock it took with the lookup, and mints nothing.
func TestFirstMintRoundTrips(t *testing.T) {
	mr, clk := miniredis.RunT(t), newClock()
	h := &holdUnlock{entered: make(chan string, 2), release: make(chan struct{})}
	release := sync.OnceFunc(func() { close(h.release) })
	t.Cleanup(release)
	rt := &redistest.RoundTrips{}
	a := newReplica(t, mr, clk, "a-", func(c *Config) {
		c.Redis.(*redis.Client).AddHook(h) // outside rt, which sees the release only when h lets it through
		c.Redis.(*redis.Client).AddHook(rt)
	})
	b := newReplica(t, mr, clk, "b-", nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req := a.request(time.Hour)

	if _, err := a.b.Credential(ctx, req); err != nil {
		t.Fatal(err)
	}
	// The lock is SET NX PX.
	want := [][]string{{"get", "set"}, {"multi", "set", "hset", "expire", "exec"}}
	if diff := cmp.Diff(want, rt.Take()); diff != "" {
		t.Errorf("round trips before the credential was handed out (-want +got):\n%s", diff)
	}
	<-h.entered
	release()
	a.b.wait()

	c, err := b.b.Credential(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	b.b.wait()
	if got := c.Token.Reveal(); got != "a-token-1" || b.p.mints.Load() != 0 {
		t.Errorf("replica b got %q and minted %d times, want a's a-token-1 and no mint", got, b.p.mints.Load())
	}
	if mr.Exists(lockKeyOf(req)) {
		t.Error("replica b kept the mint lock it took with its lookup")
	}
}

func lockKeyOf(req Request) string { return "jitproxy:mint-lock:" + req.cacheKey() }

// TestUnlockLeavesAnotherReplicasLock: the mint lock is deleted only while
// it holds the caller's token.
func TestUnlockLeavesAnotherReplicasLock(t *testing.T) {
	tests := []struct {
		name, held string // "": no lock
		want       bool   // the lock is left
	}{
		{name: "its own", held: "mine", want: false},
		{name: "another replica's", held: "theirs", want: true},
		{name: "expired", held: "", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			mr := miniredis.RunT(t)
			f := newFixture(t, mr, newClock())
			req := f.request(time.Hour)
			if tt.held != "" {
				if err := mr.Set(lockKeyOf(req), tt.held); err != nil {
					t.Fatal(err)
				}
			}
			f.b.unlock(context.Background(), req, "mine")
			if got := mr.Exists(lockKeyOf(req)); got != tt.want {
				t.Errorf("lock left = %v, want %v", got, tt.want)
			}
			if tt.want {
				if got, _ := mr.Get(lockKeyOf(req)); got != tt.held {
					t.Errorf("lock holds %q, want %q", got, tt.held)
				}
			}
		})
	}
}
