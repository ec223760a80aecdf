// Package broker makes the short-lived credentials that jitproxy injects into
// allowed requests, caches them for their lifetime, and reclaims them when
// their grant ends.
//
// Providers (TokenRequest, Vault, STS) live in child packages; the Broker in
// front of them keeps one credential per grant and target: in process, and
// in Redis so that replicas share it. Concurrent first requests for a
// credential mint it once, across replicas too: within a process the
// callers share one mint, and between replicas a lock in Redis lets one
// mint while the others wait for the credential it shares. A mint runs to
// its end even if the request that started it goes away. Every minted
// credential has its own reclaim record, so that Release revokes each one,
// including a second credential minted if a lock was lost. The callers get
// a minted credential as soon as it is shared; the lock is let go after
// that. A cached credential is never used past its grant's expiry nor
// within MinRemaining of its own.
package broker

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Credential is a minted credential.
type Credential struct {
	// Token is a bearer token (Kubernetes); zero for AWS credentials.
	Token secret.Value
	// AccessKeyID, SecretAccessKey and SessionToken are AWS credentials
	// (SessionToken is zero for an IAM user's long-lived keys); zero for
	// bearer tokens. The key ID is not a secret to AWS, but it names a
	// credential the agent must never hold, so it is kept like one.
	AccessKeyID, SecretAccessKey, SessionToken secret.Value
	// ExpiresAt is when the credential stops working.
	ExpiresAt time.Time
	// Subject names the identity the credential acts as, for audit (for
	// example system:serviceaccount:demo:reader). Never secret.
	Subject string
	// LeaseID identifies a lease to revoke at grant end, if the provider has leases.
	LeaseID string
}

// Request identifies the credential for one grant on one target.
type Request struct {
	GrantID        string
	GrantExpiresAt time.Time
	Target         string
	// Namespace is the grant's namespace; "" for a cluster-wide grant.
	Namespace string
	// Provider names the provider, as in the grant's access policy.
	Provider string
	// Options are the provider options from the access policy.
	Options map[string]string
	// Permissions are what the grant allows, for providers that narrow the
	// credential to it (an STS session policy); nil for discovery.
	Permissions []access.Permission
	// Caller is who the credential is first minted for (the grant's
	// requester acting through a session), for providers that record it
	// with the credential (STS session name and tags). Never secret.
	Caller access.Caller
}

func (r Request) cacheKey() string { return r.GrantID + ":" + r.Target }

// Provider mints credentials. Mint must return a credential no broader than
// the grant and should not make it outlive req.GrantExpiresAt by more than
// its backend requires.
type Provider interface {
	Mint(ctx context.Context, req Request) (Credential, error)
	// ValidateOptions checks access-policy options when policies load.
	ValidateOptions(opts map[string]string) error
}

// Releaser is implemented by providers that can revoke what they minted.
type Releaser interface {
	Release(ctx context.Context, c Credential) error
}

// Auditor records audit events.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Config configures a Broker.
type Config struct {
	// Redis shares credentials between replicas. Required.
	Redis redis.UniversalClient
	// Providers by ProviderKey(target, provider name). Required.
	Providers map[string]Provider
	// Audit receives credential events. Required.
	Audit Auditor
	// MinRemaining is the least lifetime a credential must have left to be
	// handed out; default 30s.
	MinRemaining time.Duration
	// MintTimeout bounds one mint; RedisTimeout one Redis call. Defaults 10s, 2s.
	// A replica holds the mint lock for at most MintTimeout+RedisTimeout, and
	// waits as long at most for another replica's mint.
	MintTimeout, RedisTimeout time.Duration
	// LockPollInterval is how often a replica waiting for another replica's
	// mint looks for the shared credential and tries the mint lock; default 50ms.
	LockPollInterval time.Duration
	// KeyPrefix prefixes Redis keys; default "jitproxy:".
	KeyPrefix string
	// Metrics counts lookups and mints; nil counts nothing.
	Metrics Metrics
	Now     func() time.Time
	Logger  *slog.Logger
}

// Metrics counts the broker's work. Its methods must be cheap and safe
// for concurrent use.
type Metrics interface {
	// Lookup counts a credential asked for, by where it came from: "hit"
	// (this process's cache, counted per call), "shared" (Redis) or
	// "miss" (minted); the last two are counted once per load, which
	// concurrent callers share.
	Lookup(result string)
	// Mint counts a mint by a provider, failed when err is not nil.
	Mint(provider string, err error)
}

type noMetrics struct{}

func (noMetrics) Lookup(string)      {}
func (noMetrics) Mint(string, error) {}

// ProviderKey is the key of a provider in Config.Providers.
func ProviderKey(target, provider string) string { return target + "/" + provider }

// ErrNoProvider: the grant names a provider that is not configured for its target.
var ErrNoProvider = errors.New("no such credential provider for the target")

// Broker hands out cached credentials. It is safe for concurrent use.
type Broker struct {
	cfg Config

	mu sync.Mutex
	// local holds the credentials this replica uses, until they are no
	// longer valid: each store forgets those past their validTo, so that
	// a grant another replica released (Release runs on that one only)
	// leaves nothing here for long.
	local map[string]cached   // by Request.cacheKey
	loads map[string]*loading // by Request.cacheKey: the load under way
	bg    sync.WaitGroup      // the loads' goroutines
}

// loading is one load of a credential that concurrent callers share. done
// is closed once cred and err are set.
type loading struct {
	done chan struct{}
	cred Credential
	err  error
}

type cached struct {
	cred     Credential
	provider string
	validTo  time.Time // min(credential expiry - MinRemaining, grant expiry)
}

// New validates cfg and returns a Broker.
func New(cfg Config) (*Broker, error) {
	var errs []error
	if cfg.Redis == nil {
		errs = append(errs, errors.New("Redis is required"))
	}
	if cfg.Providers == nil {
		errs = append(errs, errors.New("Providers is required"))
	}
	if cfg.Audit == nil {
		errs = append(errs, errors.New("Audit is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	if cfg.MinRemaining <= 0 {
		cfg.MinRemaining = 30 * time.Second
	}
	if cfg.MintTimeout <= 0 {
		cfg.MintTimeout = 10 * time.Second
	}
	if cfg.RedisTimeout <= 0 {
		cfg.RedisTimeout = 2 * time.Second
	}
	if cfg.LockPollInterval <= 0 {
		cfg.LockPollInterval = 50 * time.Millisecond
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "jitproxy:"
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = noMetrics{}
	}
	return &Broker{cfg: cfg, local: map[string]cached{}, loads: map[string]*loading{}}, nil
}

// Provider returns the provider for target and name, or nil.
func (b *Broker) Provider(target, name string) Provider {
	return b.cfg.Providers[ProviderKey(target, name)]
}

// Credential returns a credential for req: from the process, from Redis,
// or freshly minted. Concurrent calls for one grant and target mint once,
// on this replica and across replicas. The mint does not depend on ctx: if
// ctx ends first, Credential returns an error wrapping ctx.Err() while the
// mint goes on, and its credential is cached for the next caller. Any
// failure is an error; the caller must not forward the request.
func (b *Broker) Credential(ctx context.Context, req Request) (Credential, error) {
	now := b.cfg.Now()
	if !now.Before(req.GrantExpiresAt) {
		return Credential{}, errors.New("grant has expired")
	}
	key := req.cacheKey()
	b.mu.Lock()
	c, ok := b.local[key]
	if ok && now.Before(c.validTo) {
		b.mu.Unlock()
		b.cfg.Metrics.Lookup("hit")
		return c.cred, nil
	}
	l := b.loads[key]
	if l == nil {
		// The load runs detached from the caller that starts it, so that
		// this caller going away fails neither the mint nor the callers
		// waiting for it; each of its steps has its own deadline.
		l = &loading{done: make(chan struct{})}
		b.loads[key] = l
		b.bg.Add(1)
		go b.run(context.WithoutCancel(ctx), req, l)
	}
	b.mu.Unlock()
	// Every caller waits with its own ctx.
	select {
	case <-l.done:
		return l.cred, l.err
	case <-ctx.Done():
		return Credential{}, fmt.Errorf("wait for %s credential: %w", req.Provider, ctx.Err())
	}
}

// run loads req's credential for the callers waiting on l: it caches the
// credential, hands it to them, and only then lets go of the mint lock if
// it minted, so that they do not wait for that round trip to Redis (other
// replicas look for the shared credential before they try the lock).
func (b *Broker) run(ctx context.Context, req Request, l *loading) {
	defer b.bg.Done()
	c, unlock, err := b.load(ctx, req)
	key := req.cacheKey()
	b.mu.Lock()
	if err == nil {
		b.forgetInvalid(b.cfg.Now())
		b.local[key] = cached{cred: c, provider: req.Provider, validTo: b.validTo(req, c)}
	}
	delete(b.loads, key)
	b.mu.Unlock()
	l.cred, l.err = c, err
	close(l.done)
	if unlock != nil {
		unlock()
	}
}

// forgetInvalid deletes the local credentials no longer valid at now. It
// runs on each store, which happens once per grant, target and credential
// lifetime, so a pass over the map costs little. b.mu must be held.
func (b *Broker) forgetInvalid(now time.Time) {
	for k, c := range b.local {
		if !now.Before(c.validTo) {
			delete(b.local, k)
		}
	}
}

// wait returns once the loads under way have ended, the mint locks they
// let go included.
func (b *Broker) wait() { b.bg.Wait() }

// load returns the shared credential or mints one under the mint lock and
// shares it. While another replica holds the lock it polls for that
// replica's credential, for as long as the lock may be held; if the lock
// goes without a credential (that mint failed), it takes the lock itself.
// Every Redis error is returned: nothing is minted without the lock. When
// it holds the lock at the end (it minted, or found the credential shared
// when it took the lock) it returns unlock, which lets the lock go and must
// be called; a failed mint has let it go already, so that another replica
// may try at once.
func (b *Broker) load(ctx context.Context, req Request) (c Credential, unlock func(), err error) {
	p := b.Provider(req.Target, req.Provider)
	if p == nil {
		return Credential{}, nil, fmt.Errorf("%w: %q on target %q", ErrNoProvider, req.Provider, req.Target)
	}
	wait, cancel := context.WithTimeout(ctx, b.lockTTL())
	defer cancel()
	poll := time.NewTicker(b.cfg.LockPollInterval)
	defer poll.Stop()
	for {
		c, ok, token, err := b.lookup(ctx, req)
		if err != nil {
			return Credential{}, nil, err
		}
		var unlock func()
		if token != "" {
			unlock = func() { b.unlock(ctx, req, token) }
		}
		if ok {
			b.cfg.Metrics.Lookup("shared")
			return c, unlock, nil
		}
		if token != "" {
			b.cfg.Metrics.Lookup("miss")
			c, err := b.mint(ctx, req, p)
			if err != nil {
				unlock()
				return Credential{}, nil, err
			}
			return c, unlock, nil
		}
		select {
		case <-wait.Done():
			return Credential{}, nil, fmt.Errorf("wait for another replica's credential: %w", wait.Err())
		case <-poll.C:
		}
	}
}

// mint mints, the caller holding the mint lock, and shares the credential
// and its reclaim record. A credential it cannot share is revoked at once
// (if the provider can revoke), since nothing would reclaim it later.
func (b *Broker) mint(ctx context.Context, req Request, p Provider) (Credential, error) {
	mctx, cancel := context.WithTimeout(ctx, b.cfg.MintTimeout)
	defer cancel()
	c, err := p.Mint(mctx, req)
	b.cfg.Metrics.Mint(req.Provider, err)
	if err != nil {
		return Credential{}, fmt.Errorf("mint %s credential: %w", req.Provider, err)
	}
	validTo := b.validTo(req, c)
	if !b.cfg.Now().Before(validTo) {
		b.release(ctx, req.Provider, p, c)
		return Credential{}, fmt.Errorf("mint %s credential: it expires at %s, too soon to use", req.Provider, c.ExpiresAt.Format(time.RFC3339))
	}
	if err := b.share(ctx, req, c, validTo); err != nil {
		// Fail closed: an unshared credential would be minted again by
		// every replica and could not be reclaimed by the others.
		b.release(ctx, req.Provider, p, c)
		return Credential{}, err
	}
	b.recordMint(ctx, req, c)
	return c, nil
}

func (b *Broker) validTo(req Request, c Credential) time.Time {
	t := c.ExpiresAt.Add(-b.cfg.MinRemaining)
	if req.GrantExpiresAt.Before(t) {
		t = req.GrantExpiresAt
	}
	return t
}

func (b *Broker) recordMint(ctx context.Context, req Request, c Credential) {
	err := b.cfg.Audit.Record(ctx, audit.Event{
		Type:       audit.TypeCredentialMinted,
		Actor:      &audit.Actor{Name: "jitproxy"},
		Grant:      &audit.Grant{ID: req.GrantID, Target: req.Target, Namespace: req.Namespace, ExpiresAt: req.GrantExpiresAt},
		Credential: &audit.Credential{Provider: req.Provider, Target: req.Target, Subject: c.Subject, ExpiresAt: c.ExpiresAt},
	})
	if err != nil {
		b.cfg.Logger.Error("record audit event", "type", audit.TypeCredentialMinted, "err", err)
	}
}

// Release forgets every credential of the grant, in process and in Redis,
// and revokes those whose provider can revoke. It is called when a grant
// ends, which may be after the cached tokens expired: what is needed to
// revoke is kept apart from them, for longer. Errors are logged, since the
// grant has ended regardless.
func (b *Broker) Release(ctx context.Context, grantID string) {
	b.mu.Lock()
	for k := range b.local {
		if strings.HasPrefix(k, grantID+":") {
			delete(b.local, k)
		}
	}
	b.mu.Unlock()
	records, err := b.unshare(ctx, grantID)
	if err != nil {
		b.cfg.Logger.Error("release credentials", "grant", grantID, "err", err)
		return
	}
	for _, r := range records {
		b.release(ctx, r.Provider, b.Provider(r.Target, r.Provider), Credential{LeaseID: r.LeaseID, Subject: r.Subject, ExpiresAt: r.ExpiresAt})
		err := b.cfg.Audit.Record(ctx, audit.Event{
			Type:       audit.TypeCredentialReleased,
			Actor:      &audit.Actor{Name: "jitproxy"},
			Grant:      &audit.Grant{ID: grantID, Target: r.Target},
			Credential: &audit.Credential{Provider: r.Provider, Target: r.Target, Subject: r.Subject, ExpiresAt: r.ExpiresAt},
		})
		if err != nil {
			b.cfg.Logger.Error("record audit event", "type", audit.TypeCredentialReleased, "err", err)
		}
	}
}

func (b *Broker) release(ctx context.Context, name string, p Provider, c Credential) {
	r, ok := p.(Releaser)
	if !ok {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, b.cfg.MintTimeout)
	defer cancel()
	if err := r.Release(rctx, c); err != nil {
		b.cfg.Logger.Error("revoke credential", "provider", name, "subject", c.Subject, "err", err)
	}
}

// Redis keys, under the prefix:
//
//	cred:GRANT:TARGET       the cached credential (sharedEntry, with the
//	                        token or AWS keys), expiring when it may no
//	                        longer be used
//	grant-creds:GRANT       hash of TARGET/MINT -> reclaimRecord (no secret),
//	                        one field per minted credential (MINT is a random
//	                        ID), kept until an hour after the grant's expiry,
//	                        for Release
//	mint-lock:GRANT:TARGET  a random token of the replica minting for the
//	                        grant and target, expiring after MintTimeout +
//	                        RedisTimeout (see mintlock.go)

// sharedEntry is a credential as stored in Redis. Token and the AWS fields
// hold the raw secrets: Redis is jitproxy's trusted state store (see the
// README). The AWS fields are omitted when empty, so that a bearer token's
// entry is written exactly as before they existed, and either kind of entry
// reads back whichever replica wrote it.
type sharedEntry struct {
	Token           string    `json:"token"`
	AccessKeyID     string    `json:"access_key_id,omitempty"`
	SecretAccessKey string    `json:"secret_access_key,omitempty"`
	SessionToken    string    `json:"session_token,omitempty"`
	ExpiresAt       time.Time `json:"expires_at"`
	Subject         string    `json:"subject"`
	LeaseID         string    `json:"lease_id,omitempty"`
}

func newSharedEntry(c Credential) sharedEntry {
	return sharedEntry{
		Token:           c.Token.Reveal(),
		AccessKeyID:     c.AccessKeyID.Reveal(),
		SecretAccessKey: c.SecretAccessKey.Reveal(),
		SessionToken:    c.SessionToken.Reveal(),
		ExpiresAt:       c.ExpiresAt,
		Subject:         c.Subject,
		LeaseID:         c.LeaseID,
	}
}

func (e sharedEntry) credential() Credential {
	return Credential{
		Token:           secret.Value(e.Token),
		AccessKeyID:     secret.Value(e.AccessKeyID),
		SecretAccessKey: secret.Value(e.SecretAccessKey),
		SessionToken:    secret.Value(e.SessionToken),
		ExpiresAt:       e.ExpiresAt,
		Subject:         e.Subject,
		LeaseID:         e.LeaseID,
	}
}

// reclaimRecord is what Release needs to undo a mint: no secret.
type reclaimRecord struct {
	Target    string    `json:"target"`
	Provider  string    `json:"provider"`
	Subject   string    `json:"subject"`
	LeaseID   string    `json:"lease_id,omitempty"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (b *Broker) credKey(req Request) string { return b.cfg.KeyPrefix + "cred:" + req.cacheKey() }
func (b *Broker) reclaimKey(grantID string) string {
	return b.cfg.KeyPrefix + "grant-creds:" + grantID
}

// lookup reads the shared credential and tries the mint lock, in one round
// trip: ok says whether the credential may be used, token is the lock's
// token if lookup took it ("" if another replica holds it). The lock is
// taken even when the credential turns out to be shared, since asking first
// would cost a round trip on every first mint; the caller then lets it go.
// On an error lookup holds no lock.
func (b *Broker) lookup(ctx context.Context, req Request) (c Credential, ok bool, token string, err error) {
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RedisTimeout)
	defer cancel()
	token = rand.Text()
	pipe := b.cfg.Redis.Pipeline()
	get := pipe.Get(rctx, b.credKey(req))
	lock := pipe.SetNX(rctx, b.lockKey(req), token, b.lockTTL())
	pipe.Exec(rctx) // Its errors are the commands'.
	locked, lockErr := lock.Result()
	if lockErr == nil && locked {
		defer func() {
			if err != nil {
				b.unlock(ctx, req, token)
			}
		}()
	} else {
		// Held by another replica, or unknown whether SETNX was applied:
		// then the lock expires by itself.
		token = ""
	}
	raw, err := get.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		raw, err = nil, nil
	case err != nil:
		return Credential{}, false, "", fmt.Errorf("read credential cache: %w", err)
	}
	if lockErr != nil {
		return Credential{}, false, "", fmt.Errorf("take mint lock: %w", lockErr)
	}
	if raw == nil {
		return Credential{}, false, token, nil
	}
	var e sharedEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return Credential{}, false, "", fmt.Errorf("decode cached credential: %w", err)
	}
	c = e.credential()
	return c, b.cfg.Now().Before(b.validTo(req, c)), token, nil
}

func (b *Broker) share(ctx context.Context, req Request, c Credential, validTo time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RedisTimeout)
	defer cancel()
	entry, err := json.Marshal(newSharedEntry(c))
	if err != nil {
		return err
	}
	record, err := json.Marshal(reclaimRecord{Target: req.Target, Provider: req.Provider, Subject: c.Subject, LeaseID: c.LeaseID, ExpiresAt: c.ExpiresAt})
	if err != nil {
		return err
	}
	now := b.cfg.Now()
	pipe := b.cfg.Redis.TxPipeline()
	pipe.Set(ctx, b.credKey(req), entry, validTo.Sub(now))
	// Every mint has its own record, never replaced: should two credentials
	// be minted for one grant and target (a mint lock lost during a slow
	// mint, or a renewal), Release revokes both.
	pipe.HSet(ctx, b.reclaimKey(req.GrantID), req.Target+"/"+rand.Text(), record)
	pipe.Expire(ctx, b.reclaimKey(req.GrantID), req.GrantExpiresAt.Sub(now)+time.Hour)
	if _, err := pipe.Exec(ctx); err != nil {
		return fmt.Errorf("write credential cache: %w", err)
	}
	return nil
}

// unshare deletes the grant's cached credentials and reclaim records from
// Redis and returns the records. Of replicas releasing one grant at once,
// one gets the records.
func (b *Broker) unshare(ctx context.Context, grantID string) ([]reclaimRecord, error) {
	ctx, cancel := context.WithTimeout(ctx, b.cfg.RedisTimeout)
	defer cancel()
	var all *redis.MapStringStringCmd
	_, err := b.cfg.Redis.TxPipelined(ctx, func(pipe redis.Pipeliner) error {
		all = pipe.HGetAll(ctx, b.reclaimKey(grantID))
		pipe.Del(ctx, b.reclaimKey(grantID))
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read reclaim records: %w", err)
	}
	var out []reclaimRecord
	targets := map[string]bool{}
	for field, raw := range all.Val() {
		var r reclaimRecord
		if err := json.Unmarshal([]byte(raw), &r); err != nil {
			b.cfg.Logger.Error("decode reclaim record; its credential is not revoked", "grant", grantID, "field", field, "err", err)
			targets[recordTarget(field)] = true
			continue
		}
		targets[r.Target] = true
		out = append(out, r)
	}
	var keys []string
	for target := range targets {
		keys = append(keys, b.credKey(Request{GrantID: grantID, Target: target}))
	}
	if len(keys) > 0 {
		if err := b.cfg.Redis.Del(ctx, keys...).Err(); err != nil {
			return out, fmt.Errorf("delete cached credentials: %w", err)
		}
	}
	return out, nil
}

// recordTarget returns the target in a reclaim record's field, TARGET/MINT
// (MINT has no "/"), for a record that cannot be decoded.
func recordTarget(field string) string {
	if i := strings.LastIndex(field, "/"); i >= 0 {
		return field[:i]
	}
	return field
}
