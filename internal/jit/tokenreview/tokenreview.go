// Package tokenreview authenticates runners to the admin API with their
// Kubernetes ServiceAccount tokens, reviewed by a target cluster
// (TokenReview, authentication.k8s.io/v1), and maps them to jitproxy users
// (jit.Users).
package tokenreview

import (
	"cmp"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Reviews creates TokenReviews: client-go's
// AuthenticationV1().TokenReviews() of a clientset.
type Reviews interface {
	Create(ctx context.Context, review *authnv1.TokenReview, opts metav1.CreateOptions) (*authnv1.TokenReview, error)
}

// Config configures the review of one cluster's ServiceAccount tokens.
type Config struct {
	// Target names the cluster in identities:
	// serviceaccount:TARGET:NAMESPACE/NAME. Required.
	Target string
	// Reviews is the cluster's TokenReview client, with jitproxy's own
	// credentials for the target; they need create on tokenreviews (the
	// ClusterRole system:auth-delegator has it). Required.
	Reviews Reviews
	// Audiences the token must be for, one at least. Default [jitproxy]:
	// a token for the apiserver itself is refused.
	Audiences []string
	// Users maps identities to users. Nil maps none, refusing every token.
	Users *jit.Users
	// CacheTTL is how long a positive review is reused, never past the
	// token's own expiry. Default 1m; a negative value caches nothing.
	CacheTTL time.Duration
	// MaxCached bounds the cache. Default 10000.
	MaxCached int
	// Timeout bounds one review. Default 10s.
	Timeout time.Duration
	Now     func() time.Time
	Logger  *slog.Logger
}

// Authenticator reviews ServiceAccount tokens. Positive reviews are cached
// by the token's SHA-256, never the token. It is safe for concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger

	mu    sync.Mutex
	cache map[[32]byte]cached
}

type cached struct {
	p     jit.Principal
	until time.Time
}

// New validates cfg and returns its authenticator.
func New(cfg Config) (*Authenticator, error) {
	var errs []error
	if cfg.Target == "" {
		errs = append(errs, errors.New("target is required"))
	}
	if cfg.Reviews == nil {
		errs = append(errs, errors.New("Reviews is required"))
	}
	if slices.Contains(cfg.Audiences, "") {
		errs = append(errs, errors.New("audiences: none may be empty"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	if len(cfg.Audiences) == 0 {
		cfg.Audiences = []string{"jitproxy"}
	}
	cfg.CacheTTL = cmp.Or(cfg.CacheTTL, time.Minute)
	cfg.MaxCached = cmp.Or(cfg.MaxCached, 10000)
	cfg.Timeout = cmp.Or(cfg.Timeout, 10*time.Second)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authenticator{cfg: cfg, log: cfg.Logger.With("target", cfg.Target), cache: map[[32]byte]cached{}}, nil
}

// VerifyToken reviews token with the cluster and returns the principal of
// the user its ServiceAccount (serviceaccount:TARGET:NS/NAME) maps to. A
// token the cluster does not accept for the audiences, one that is not a
// ServiceAccount's, or one mapped to no user is an error wrapping
// jit.ErrUnauthenticated; a review that cannot be made (the apiserver
// unreachable, jitproxy not allowed to create tokenreviews) is an error
// wrapping jit.ErrAuthUnavailable: it fails closed. Messages never hold
// the token.
func (a *Authenticator) VerifyToken(ctx context.Context, token secret.Value) (jit.Principal, error) {
	key := sha256.Sum256([]byte(token.Reveal()))
	now := a.cfg.Now()
	a.mu.Lock()
	c, ok := a.cache[key]
	a.mu.Unlock()
	if ok && now.Before(c.until) {
		return c.p, nil
	}
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timeout)
	defer cancel()
	review, err := a.cfg.Reviews.Create(ctx, &authnv1.TokenReview{
		Spec: authnv1.TokenReviewSpec{Token: token.Reveal(), Audiences: a.cfg.Audiences},
	}, metav1.CreateOptions{})
	if err != nil {
		a.log.Error("review a ServiceAccount token (jitproxy's identity needs create on tokenreviews)", "err", err)
		return jit.Principal{}, fmt.Errorf("%w: the cluster of target %s cannot review the token now; try again", jit.ErrAuthUnavailable, a.cfg.Target)
	}
	st := review.Status
	if !st.Authenticated || st.Error != "" {
		a.log.Debug("ServiceAccount token refused by the cluster", "error", st.Error)
		return jit.Principal{}, fmt.Errorf("%w: the cluster of target %s does not accept the token for audience %s", jit.ErrUnauthenticated, a.cfg.Target, strings.Join(a.cfg.Audiences, ", "))
	}
	if len(st.Audiences) > 0 && !slices.ContainsFunc(st.Audiences, func(aud string) bool { return slices.Contains(a.cfg.Audiences, aud) }) {
		return jit.Principal{}, fmt.Errorf("%w: the token of target %s is not for audience %s", jit.ErrUnauthenticated, a.cfg.Target, strings.Join(a.cfg.Audiences, ", "))
	}
	ns, name, ok := serviceAccount(st.User.Username)
	if !ok {
		return jit.Principal{}, fmt.Errorf("%w: the token of target %s is not a ServiceAccount's", jit.ErrUnauthenticated, a.cfg.Target)
	}
	ref := jit.IdentityRef{Method: jit.AuthServiceAccount, Source: a.cfg.Target, Subject: ns + "/" + name}
	p, ok := a.cfg.Users.Resolve(ref, nil)
	if !ok {
		return jit.Principal{}, fmt.Errorf("%w: identity %s is not mapped to a jitproxy user (admin.users)", jit.ErrUnauthenticated, ref)
	}
	a.remember(key, p, now, token)
	return p, nil
}

// remember caches a positive review until CacheTTL from now or the
// token's expiry, whichever is first.
func (a *Authenticator) remember(key [32]byte, p jit.Principal, now time.Time, token secret.Value) {
	if a.cfg.CacheTTL < 0 {
		return
	}
	until := now.Add(a.cfg.CacheTTL)
	if exp, ok := jit.UnverifiedExpiry(token.Reveal()); ok && exp.Before(until) {
		// The cluster has just verified the token, so its exp holds.
		until = exp
	}
	if !now.Before(until) {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.cache) >= a.cfg.MaxCached {
		for k, c := range a.cache {
			if !now.Before(c.until) {
				delete(a.cache, k)
			}
		}
		if len(a.cache) >= a.cfg.MaxCached {
			return
		}
	}
	a.cache[key] = cached{p: p, until: until}
}

// serviceAccount splits system:serviceaccount:NS:NAME.
func serviceAccount(username string) (ns, name string, ok bool) {
	rest, ok := strings.CutPrefix(username, "system:serviceaccount:")
	if !ok {
		return "", "", false
	}
	ns, name, ok = strings.Cut(rest, ":")
	return ns, name, ok && ns != "" && name != "" && !strings.Contains(name, ":")
}
