package broker

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// The mint lock lets one replica at a time mint for a grant and target; the
// others wait for the credential it shares (see load). It is a Redis key
// holding the holder's random token, set only if absent and expiring by
// itself, so that a replica that dies while minting holds it no longer than
// a mint may take. It is a lease, not a guarantee: should it expire during
// a mint (a provider ignoring its deadline, a paused process, a Redis
// failover that loses the key), two replicas may mint; each credential then
// has its own reclaim record and Release revokes both.

// unlockScript deletes the lock only if it still holds the caller's token,
// so that a holder whose lock expired does not delete another's.
var unlockScript = redis.NewScript(`
if redis.call("GET", KEYS[1]) == ARGV[1] then
	return redis.call("DEL", KEYS[1])
end
return 0
`)

func (b *Broker) lockKey(req Request) string { return b.cfg.KeyPrefix + "mint-lock:" + req.cacheKey() }

// lockTTL is the longest a holder needs the lock: one mint, then the Redis
// transaction that shares its credential.
func (b *Broker) lockTTL() time.Duration { return b.cfg.MintTimeout + b.cfg.RedisTimeout }

// unlock lets the mint lock go if it still holds token. An error is logged:
// the lock expires by itself.
func (b *Broker) unlock(ctx context.Context, req Request, token string) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RedisTimeout)
	defer cancel()
	if err := unlockScript.Run(ctx, b.cfg.Redis, []string{b.lockKey(req)}, token).Err(); err != nil {
		b.cfg.Logger.Error("release mint lock", "grant", req.GrantID, "target", req.Target, "err", err)
	}
}
