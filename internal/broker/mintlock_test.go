package broker

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
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
