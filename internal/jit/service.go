package jit

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Auditor records audit events.
type Auditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// Config configures a Service.
type Config struct {
	// Redis is the shared state store. Required.
	Redis redis.UniversalClient
	// Policies gives the access policies grants are requested under: a
	// *Policies, or a source whose set a reload replaces. Required.
	Policies PolicySource
	// Identities authenticate the admin API's static tokens. Required.
	Identities *Identities
	// Audit receives every session and grant event. Required.
	Audit Auditor
	// Targets names the targets this jitproxy serves; a policy naming
	// another cannot be requested.
	Targets []string
	// RunnerGroups may create agent sessions. Default: jitproxy:runners.
	RunnerGroups []string
	// AdminGroups may see and revoke every grant and end every session.
	// Default: jitproxy:admins.
	AdminGroups []string
	// SessionTTL is the lifetime of a session created without one; default
	// 8h. MaxSessionTTL caps the lifetime asked for; default 24h.
	SessionTTL, MaxSessionTTL time.Duration
	// Retention is how long ended grants stay visible; default 7 days.
	Retention time.Duration
	// ReapInterval is how often Run looks for grants past their deadline;
	// default 1s. Data-plane lookups never need the loop to be on time.
	ReapInterval time.Duration
	// RedisTimeout bounds every Redis call; default 2s.
	RedisTimeout time.Duration
	// KeyPrefix prefixes every Redis key; default "jitproxy:".
	KeyPrefix string
	// AutoApprover, if set, evaluates the auto-approval rules for requests
	// that need approval.
	AutoApprover AutoApprover
	// OnGrantEnd, if set, is called after an ACTIVE grant is revoked or
	// expires, with the ended grant, so its credentials can be reclaimed.
	OnGrantEnd func(ctx context.Context, g *Grant)
	// Now defaults to time.Now. Logger defaults to slog.Default().
	Now    func() time.Time
	Logger *slog.Logger
}

// Service manages sessions and grants. It is safe for concurrent use; Run
// must be running for the cache and the expiry loop to work.
type Service struct {
	cfg         Config
	store       *store
	cache       *activeCache
	watches     *watchSet
	locks       atomic.Pointer[lockView]
	log         *slog.Logger
	reapFailing atomic.Bool // the last Reap could not read the store
}

// New validates cfg and returns a Service.
func New(cfg Config) (*Service, error) {
	var errs []error
	if cfg.Redis == nil {
		errs = append(errs, errors.New("Redis is required"))
	}
	if cfg.Policies == nil || cfg.Policies.AccessPolicies() == nil {
		errs = append(errs, errors.New("Policies is required"))
	}
	if cfg.Identities == nil {
		errs = append(errs, errors.New("Identities is required"))
	}
	if cfg.Audit == nil {
		errs = append(errs, errors.New("Audit is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("jit: %w", err)
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&cfg.SessionTTL, 8*time.Hour)
	def(&cfg.MaxSessionTTL, 24*time.Hour)
	def(&cfg.Retention, 7*24*time.Hour)
	def(&cfg.ReapInterval, time.Second)
	def(&cfg.RedisTimeout, 2*time.Second)
	if cfg.RunnerGroups == nil {
		cfg.RunnerGroups = []string{"jitproxy:runners"}
	}
	if cfg.AdminGroups == nil {
		cfg.AdminGroups = []string{"jitproxy:admins"}
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
	s := &Service{
		cfg:   cfg,
		store: &store{rdb: cfg.Redis, prefix: cfg.KeyPrefix, retention: cfg.Retention, timeout: cfg.RedisTimeout},
		cache: newActiveCache(),
		log:   cfg.Logger,
	}
	s.locks.Store(staleLocks)
	s.watches = newWatchSet(s.ended, func(key string, err error) {
		s.log.Warn("check whether a watched grant or session ended", "key", key, "err", err)
	})
	return s, nil
}

// Run follows grant changes for the cache and the watches, and ends grants
// past their deadline, until ctx is done. It returns nil when ctx ends.
func (s *Service) Run(ctx context.Context) error {
	s.watches.run(ctx)
	changed := func(key string) {
		if strings.HasPrefix(key, "lock:") {
			s.lockChanged(ctx)
			return
		}
		s.watches.changed(key)
	}
	// After a (re)subscription, announcements may have been missed: the
	// locks are read again and every watch is checked.
	subscribed := func() { s.lockChanged(ctx) }
	go s.cache.follow(ctx, s.cfg.Redis, s.store.changesChannel(), s.log, changed, subscribed)
	t := time.NewTicker(s.cfg.ReapInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			s.Reap(ctx)
		}
	}
}

// policies returns the access policies in force. An operation reads them
// once, so that it sees one set from start to end.
func (s *Service) policies() *Policies { return s.cfg.Policies.AccessPolicies() }

func (s *Service) now() time.Time { return s.cfg.Now().UTC().Truncate(time.Millisecond) }

func (s *Service) record(ctx context.Context, e audit.Event) {
	if err := s.cfg.Audit.Record(ctx, e); err != nil {
		s.log.Error("record audit event", "type", e.Type, "err", err)
	}
}

func (s *Service) inGroups(p Principal, groups []string) bool {
	return !p.IsAgent() && slices.ContainsFunc(p.Groups, func(g string) bool { return slices.Contains(groups, g) })
}

func (s *Service) isAdmin(p Principal) bool { return s.inGroups(p, s.cfg.AdminGroups) }

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

func newID(prefix string) string {
	b := make([]byte, 10)
	rand.Read(b)
	return prefix + idEncoding.EncodeToString(b)
}

// SessionRequest asks for an agent session.
type SessionRequest struct {
	Agent  string
	User   string
	Groups []string
	// TTL defaults to Config.SessionTTL and may not exceed MaxSessionTTL.
	TTL time.Duration
}

// CreateSession creates an agent session and returns it with its secret,
// which is not stored and cannot be recovered. Only runners may call it.
// Agent, user and each group must be printable names of at most
// MaxNameLength bytes, at most MaxGroups groups, and the user may not hold
// ':'; otherwise the error wraps ErrInvalid.
func (s *Service) CreateSession(ctx context.Context, by Principal, req SessionRequest) (*Session, secret.Value, error) {
	if !s.inGroups(by, s.cfg.RunnerGroups) && !s.isAdmin(by) {
		return nil, "", fmt.Errorf("%w: only runners may create sessions", ErrForbidden)
	}
	if err := req.validate(); err != nil {
		return nil, "", err
	}
	ttl := req.TTL
	if ttl == 0 {
		ttl = s.cfg.SessionTTL
	}
	if ttl < 0 || ttl > s.cfg.MaxSessionTTL {
		return nil, "", fmt.Errorf("%w: session ttl %s must be positive and at most %s", ErrInvalid, ttl, s.cfg.MaxSessionTTL)
	}
	now := s.now()
	sec := secret.Random(32)
	ss := &storedSession{
		Session: Session{
			ID: newID("s-"), Agent: req.Agent, User: req.User, Groups: req.Groups,
			CreatedBy: by.Name, CreatedAt: now, ExpiresAt: now.Add(ttl),
		},
		SecretDigest: secretDigest(sec),
	}
	if err := s.store.putSession(ctx, ss, ttl); err != nil {
		return nil, "", err
	}
	s.record(ctx, audit.Event{Type: audit.TypeSessionCreated, Actor: by.actor(), Session: ss.auditView()})
	return &ss.Session, sec, nil
}

// AuthenticateSession checks a session credential and returns the session.
// Every failure, whatever its cause, is ErrUnauthenticated, except a store
// failure, which is returned as is (the caller fails closed either way).
func (s *Service) AuthenticateSession(ctx context.Context, id string, sec secret.Value) (*Session, error) {
	ss, err := s.store.getSession(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown or expired session", ErrUnauthenticated)
	}
	if err != nil {
		return nil, err
	}
	if !secret.Value(secretDigest(sec)).Equal(secret.Value(ss.SecretDigest)) || !s.now().Before(ss.ExpiresAt) {
		return nil, fmt.Errorf("%w: unknown or expired session", ErrUnauthenticated)
	}
	return &ss.Session, nil
}

// EndSession deletes a session and revokes the grants bound to it. The
// runner that created it, the session itself and admins may end it.
func (s *Service) EndSession(ctx context.Context, by Principal, id string) error {
	ss, err := s.store.getSession(ctx, id)
	if err != nil {
		return err
	}
	if by.Session != id && by.Name != ss.CreatedBy && !s.isAdmin(by) {
		return fmt.Errorf("session %s: %w", id, ErrNotFound)
	}
	if _, err := s.store.deleteSession(ctx, id, ss.User); err != nil {
		return err
	}
	s.cache.change("session", id, ss.User)
	s.record(ctx, audit.Event{Type: audit.TypeSessionEnded, Actor: by.actor(), Session: ss.auditView()})
	grants, err := s.store.liveGrants(ctx, ss.User, nil)
	if err != nil {
		return err
	}
	for _, g := range grants {
		if g.Session == id {
			if _, err := s.end(ctx, g.ID, by.actor(), StateRevoked, "session ended"); err != nil && !errors.Is(err, ErrConflict) {
				return err
			}
		}
	}
	return nil
}
