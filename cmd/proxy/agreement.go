package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// Replicas that share a Redis must agree on their CA (agents trust one)
// and on who is who (identities and users): a replica with a CA or
// identities of its own would serve silently different answers. Each
// replica publishes what it holds, as digests, under keys that live while
// a replica holding them runs; a replica that finds different ones refuses
// to start. When every replica has stopped, the keys expire and a new CA
// or identities may take over.

// agreementTTL is how long the published digests outlive the last replica
// that refreshes them; agreementRefresh is how often a replica does.
const (
	agreementTTL     = 30 * time.Second
	agreementRefresh = 10 * time.Second
)

// agreement is what a replica publishes: digests, never secrets.
type agreement struct {
	rdb    redis.UniversalClient
	prefix string
	items  []agreed
}

type agreed struct {
	key, what, digest string
}

// newAgreement digests the CA certificate and the identities (names,
// groups and token digests) with the users that map them.
func newAgreement(rdb redis.UniversalClient, prefix string, caCertPEM []byte, ids []jit.Identity, cfg *Config) *agreement {
	type identity struct {
		Name, Token string
		Groups      []string
	}
	var is []identity
	for _, id := range ids {
		d := sha256.Sum256([]byte(id.Token.Reveal()))
		is = append(is, identity{Name: id.Name, Token: hex.EncodeToString(d[:]), Groups: slices.Sorted(slices.Values(id.Groups))})
	}
	slices.SortFunc(is, func(a, b identity) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	who, err := json.Marshal(struct {
		Identities   []identity
		Users        []UserConfig
		OIDC         []OIDCConfig
		RunnerGroups []string
		AdminGroups  []string
	}{is, cfg.Admin.Users, cfg.Admin.OIDC, cfg.Admin.RunnerGroups, cfg.Admin.AdminGroups})
	if err != nil {
		panic(err) // strings, slices and maps only
	}
	return &agreement{rdb: rdb, prefix: prefix, items: []agreed{
		{key: prefix + "agree:ca", what: "CA certificate (ca.crt)", digest: digest(caCertPEM)},
		{key: prefix + "agree:identities", what: "identities and users (admin.identities, the identities file, admin.users, admin.oidc, runner and admin groups)", digest: digest(who)},
	}}
}

func digest(b []byte) string {
	d := sha256.Sum256(b)
	return hex.EncodeToString(d[:])
}

// errDisagree is a replica whose CA or identities differ from those of the
// replicas running on the same Redis.
var errDisagree = errors.New("this replica disagrees with the replicas running on the same Redis")

// check publishes a's digests, or confirms that those published match;
// errDisagree names what differs.
func (a *agreement) check(ctx context.Context) error {
	var errs []error
	for _, it := range a.items {
		ok, err := a.rdb.SetNX(ctx, it.key, it.digest, agreementTTL).Result()
		if err != nil {
			return fmt.Errorf("publish the %s digest: %w", it.what, err)
		}
		if ok {
			continue
		}
		theirs, err := a.rdb.Get(ctx, it.key).Result()
		switch {
		case errors.Is(err, redis.Nil):
			// Expired between the two calls: the next check publishes it.
		case err != nil:
			return fmt.Errorf("read the %s digest: %w", it.what, err)
		case theirs != it.digest:
			errs = append(errs, fmt.Errorf("%w: its %s (sha256 %.12s) differs from theirs (sha256 %.12s); give every replica the same, from a Secret or shared files", errDisagree, it.what, it.digest, theirs))
		default:
			if err := a.rdb.PExpire(ctx, it.key, agreementTTL).Err(); err != nil {
				return fmt.Errorf("refresh the %s digest: %w", it.what, err)
			}
		}
	}
	return errors.Join(errs...)
}

// keep refreshes the digests until ctx ends. A disagreement found later
// (another replica published first while Redis was away) is logged: the
// replicas that started first keep serving.
func (a *agreement) keep(ctx context.Context, log *slog.Logger) error {
	t := time.NewTicker(agreementRefresh)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
			if err := a.check(cctx); err != nil && ctx.Err() == nil {
				log.Error("replicas' CA or identities", "err", err)
			}
			cancel()
		}
	}
}
