// Package oidcauth authenticates people to the admin API with OpenID
// Connect ID tokens from a configured issuer, and maps them to jitproxy
// users (jit.Users).
package oidcauth

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// What becomes of a verified token whose identity no user lists.
const (
	// UnmappedRefuse refuses it: only the identities admin.users lists
	// authenticate. The default.
	UnmappedRefuse = "refuse"
	// UnmappedClaim makes the username claim's value the user's name,
	// unless a configured user or static identity has that name.
	UnmappedClaim = "claim"
)

// Config configures one OIDC provider.
type Config struct {
	// Name names the provider in identities: oidc:NAME:USERNAME. Required.
	Name string
	// Issuer is the provider's issuer URL, where discovery
	// (ISSUER/.well-known/openid-configuration) is served; a token's iss
	// must equal it. Required.
	Issuer string
	// ClientIDs are the audiences accepted: a token's aud must hold one
	// of them. Required.
	ClientIDs []string
	// UsernameClaim is the claim whose string value names the identity;
	// default "sub". With "email", a token whose email_verified is false
	// is refused.
	UsernameClaim string
	// GroupsClaim, if set, is a claim holding a string or a list of
	// strings: groups the provider asserts, added to the user's.
	GroupsClaim string
	// GroupsPrefix is prepended to each group of GroupsClaim, so that a
	// provider's group cannot pose as one of jitproxy's own (such as
	// jitproxy:admins). Default none.
	GroupsPrefix string
	// RequiredClaims are claims a token must hold, each with exactly the
	// string value given.
	RequiredClaims map[string]string
	// UnmappedUsers is UnmappedRefuse (the default) or UnmappedClaim.
	UnmappedUsers string
	// Users maps identities to users. Nil maps none.
	Users *jit.Users
	// HTTPClient fetches discovery and keys. Default: a 10s timeout and
	// no proxy.
	HTTPClient *http.Client
	// RetryInterval is the least time between discovery attempts while
	// discovery fails. Default 10s.
	RetryInterval time.Duration
	Now           func() time.Time
	Logger        *slog.Logger
}

// Authenticator verifies one provider's ID tokens. Discovery happens at
// the first use (or Discover) and is retried, at most every RetryInterval,
// until it succeeds: jitproxy starts, and serves agents and static tokens,
// while the provider is down. It is safe for concurrent use.
type Authenticator struct {
	cfg Config
	log *slog.Logger
	// ctx carries the HTTP client to go-oidc's key fetches, for the
	// authenticator's lifetime.
	ctx context.Context

	mu       sync.Mutex
	verifier *oidc.IDTokenVerifier
	tried    time.Time
}

// New validates cfg and returns its authenticator. It does not reach the
// provider.
func New(cfg Config) (*Authenticator, error) {
	var errs []error
	if cfg.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if cfg.Issuer == "" {
		errs = append(errs, errors.New("issuer is required"))
	}
	if len(cfg.ClientIDs) == 0 || slices.Contains(cfg.ClientIDs, "") {
		errs = append(errs, errors.New("client_ids: list at least one, none empty"))
	}
	switch cfg.UnmappedUsers {
	case "":
		cfg.UnmappedUsers = UnmappedRefuse
	case UnmappedRefuse, UnmappedClaim:
	default:
		errs = append(errs, fmt.Errorf("unmapped_users %q: want refuse or claim", cfg.UnmappedUsers))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg.UsernameClaim = cmp.Or(cfg.UsernameClaim, "sub")
	cfg.RetryInterval = cmp.Or(cfg.RetryInterval, 10*time.Second)
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Authenticator{
		cfg: cfg, log: cfg.Logger.With("oidc_provider", cfg.Name),
		ctx: oidc.ClientContext(context.Background(), cfg.HTTPClient),
	}, nil
}

// Issuer is the provider's issuer URL.
func (a *Authenticator) Issuer() string { return a.cfg.Issuer }

// Discover reads the provider's discovery document, unless it has been
// read; its error says why the provider cannot be used yet.
func (a *Authenticator) Discover(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, err := a.discover(ctx, true)
	return err
}

// discover returns the verifier, reading the discovery document when there
// is none and the last attempt is RetryInterval old (or force).
func (a *Authenticator) discover(ctx context.Context, force bool) (*oidc.IDTokenVerifier, error) {
	if a.verifier != nil {
		return a.verifier, nil
	}
	now := a.cfg.Now()
	if !force && now.Sub(a.tried) < a.cfg.RetryInterval {
		return nil, errors.New("discovery failed recently; waiting before the next attempt")
	}
	a.tried = now
	ctx, cancel := context.WithTimeout(oidc.ClientContext(ctx, a.cfg.HTTPClient), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, a.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("discover OIDC provider %s at %s: %w", a.cfg.Name, a.cfg.Issuer, err)
	}
	// The audience is checked against every client ID in verify.
	a.verifier = p.VerifierContext(a.ctx, &oidc.Config{SkipClientIDCheck: true, Now: a.cfg.Now})
	a.log.Info("OIDC provider discovered", "issuer", a.cfg.Issuer)
	return a.verifier, nil
}

// VerifyToken is AuthenticateIDToken, for jit.TokenVerifier.
func (a *Authenticator) VerifyToken(ctx context.Context, token secret.Value) (jit.Principal, error) {
	return a.AuthenticateIDToken(ctx, token.Reveal())
}

// AuthenticateIDToken verifies rawIDToken (signature, issuer, audience,
// expiry, required claims) and returns the principal of the user its
// identity (oidc:NAME:USERNAME) maps to. An invalid token, or one whose
// identity maps to no user (see UnmappedUsers), is an error wrapping
// jit.ErrUnauthenticated; a provider that cannot be reached, one wrapping
// jit.ErrAuthUnavailable. Messages never hold the token.
func (a *Authenticator) AuthenticateIDToken(ctx context.Context, rawIDToken string) (jit.Principal, error) {
	a.mu.Lock()
	v, err := a.discover(ctx, false)
	a.mu.Unlock()
	if err != nil {
		a.log.Error("OIDC provider unavailable", "err", err)
		return jit.Principal{}, fmt.Errorf("%w: OIDC provider %s cannot be reached; try again", jit.ErrAuthUnavailable, a.cfg.Name)
	}
	tok, err := v.Verify(ctx, rawIDToken)
	if err != nil {
		var expired *oidc.TokenExpiredError
		switch {
		case errors.As(err, &expired):
			return jit.Principal{}, a.refuse("it expired at %s", expired.Expiry.UTC().Format(time.RFC3339))
		case strings.Contains(err.Error(), "fetching keys"):
			a.log.Error("fetch the OIDC provider's keys", "err", err)
			return jit.Principal{}, fmt.Errorf("%w: OIDC provider %s cannot be reached; try again", jit.ErrAuthUnavailable, a.cfg.Name)
		default:
			a.log.Debug("OIDC token refused", "err", err)
			return jit.Principal{}, a.refuse("its signature, issuer or form is not valid")
		}
	}
	if !slices.ContainsFunc(tok.Audience, func(aud string) bool { return slices.Contains(a.cfg.ClientIDs, aud) }) {
		return jit.Principal{}, a.refuse("its audience is none of this jitproxy's client IDs")
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return jit.Principal{}, a.refuse("its claims are not a JSON object")
	}
	for k, want := range a.cfg.RequiredClaims {
		if got, _ := claims[k].(string); got != want {
			return jit.Principal{}, a.refuse("claim %q does not have the required value", k)
		}
	}
	username, _ := claims[a.cfg.UsernameClaim].(string)
	if username == "" {
		return jit.Principal{}, a.refuse("it has no string claim %q", a.cfg.UsernameClaim)
	}
	if a.cfg.UsernameClaim == "email" {
		if verified, ok := claims["email_verified"].(bool); ok && !verified {
			return jit.Principal{}, a.refuse("its email is not verified")
		}
	}
	groups, ok := a.groups(claims)
	if !ok {
		return jit.Principal{}, a.refuse("claim %q is neither a string nor a list of strings", a.cfg.GroupsClaim)
	}
	ref := jit.IdentityRef{Method: jit.AuthOIDC, Source: a.cfg.Name, Subject: username}
	if p, ok := a.cfg.Users.Resolve(ref, groups); ok {
		return p, nil
	}
	if a.cfg.UnmappedUsers == UnmappedClaim && !a.cfg.Users.Taken(username) {
		return jit.Principal{Name: username, Groups: groups, AuthMethod: jit.AuthOIDC, Identity: ref.String()}, nil
	}
	return jit.Principal{}, fmt.Errorf("%w: identity %s is not mapped to a jitproxy user (admin.users)", jit.ErrUnauthenticated, ref)
}

// refuse is the error of a token that is not valid.
func (a *Authenticator) refuse(format string, args ...any) error {
	return fmt.Errorf("%w: OIDC token of provider %s is not accepted: %s", jit.ErrUnauthenticated, a.cfg.Name, fmt.Sprintf(format, args...))
}

// groups reads the groups claim, prefixed; ok is false when it is neither
// absent, a string nor a list of strings.
func (a *Authenticator) groups(claims map[string]any) (groups []string, ok bool) {
	if a.cfg.GroupsClaim == "" {
		return nil, true
	}
	switch v := claims[a.cfg.GroupsClaim].(type) {
	case nil:
		return nil, true
	case string:
		groups = []string{v}
	case []any:
		for _, g := range v {
			s, ok := g.(string)
			if !ok {
				return nil, false
			}
			groups = append(groups, s)
		}
	default:
		return nil, false
	}
	out := groups[:0]
	for _, g := range groups {
		if g != "" {
			out = append(out, a.cfg.GroupsPrefix+g)
		}
	}
	return out, true
}
