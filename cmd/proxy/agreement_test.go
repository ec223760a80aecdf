package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// TestAgreement: replicas on one Redis must hold the same CA and
// identities; one that differs is refused, naming what differs, until
// every replica holding the others has stopped and their digests expired.
func TestAgreement(t *testing.T) {
	ctx := context.Background()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	const token = "alice-token-0123456789"
	ids := []jit.Identity{{Name: "alice", Groups: []string{"sre"}, Token: secret.Value(token)}}
	cfg := &Config{}
	replica := func(ca string, ids []jit.Identity) *agreement {
		return newAgreement(rdb, "jitproxy:", []byte(ca), ids, cfg)
	}
	if err := replica("CA-1", ids).check(ctx); err != nil {
		t.Fatalf("the first replica: %v", err)
	}
	if err := replica("CA-1", ids).check(ctx); err != nil {
		t.Errorf("a replica with the same CA and identities: %v", err)
	}
	err := replica("CA-2", ids).check(ctx)
	if !errors.Is(err, errDisagree) || !strings.Contains(err.Error(), "CA certificate") || strings.Contains(err.Error(), "identities and users") {
		t.Errorf("another CA: %v", err)
	}
	other := []jit.Identity{{Name: "alice", Groups: []string{"sre", "jitproxy:admins"}, Token: secret.Value(token)}}
	if err := replica("CA-1", other).check(ctx); !errors.Is(err, errDisagree) || !strings.Contains(err.Error(), "identities and users") {
		t.Errorf("other groups for an identity: %v", err)
	}
	otherToken := []jit.Identity{{Name: "alice", Groups: []string{"sre"}, Token: "another-token-0123456789"}}
	if err := replica("CA-1", otherToken).check(ctx); !errors.Is(err, errDisagree) {
		t.Errorf("another token for an identity: %v", err)
	}
	for _, k := range mr.Keys() {
		if v, _ := mr.Get(k); strings.Contains(v, token) || strings.Contains(v, "CA-1") {
			t.Errorf("%s holds a secret or the CA itself: %q", k, v)
		}
	}
	// Every replica of the first kind stopped: the digests expire, and a
	// new CA may take over.
	mr.FastForward(agreementTTL)
	if err := replica("CA-2", ids).check(ctx); err != nil {
		t.Errorf("a new CA once the old replicas are gone: %v", err)
	}
}
