package approvalpage

// A claims-only Authenticator for the page's tests; jitproxy itself names
// people with the admin.oidc provider's verifier and user mapping
// (internal/jit/oidcauth).

import (
	"context"
	"errors"
	"fmt"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// ClaimsConfig configures a ClaimsAuthenticator.
type ClaimsConfig struct {
	// Issuer is the OpenID provider whose ID tokens are accepted. Required.
	Issuer *Issuer
	// ClientID is the audience ID tokens must name. Required.
	ClientID string
	// UsernameClaim names the person; default "email". With "email", a
	// token whose email_verified claim is false is refused.
	UsernameClaim string
	// GroupsClaim holds the person's groups, a list of strings or one
	// string; default "groups". A token without it has no groups.
	GroupsClaim string
}

// ClaimsAuthenticator turns a verified ID token into a principal by two of
// its claims. It is safe for concurrent use.
type ClaimsAuthenticator struct {
	cfg ClaimsConfig
}

// NewClaimsAuthenticator validates cfg and returns the authenticator.
func NewClaimsAuthenticator(cfg ClaimsConfig) (*ClaimsAuthenticator, error) {
	var errs []error
	if cfg.Issuer == nil {
		errs = append(errs, errors.New("Issuer is required"))
	}
	if cfg.ClientID == "" {
		errs = append(errs, errors.New("ClientID is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("approvalpage: %w", err)
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "email"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	return &ClaimsAuthenticator{cfg: cfg}, nil
}

// AuthenticateIDToken verifies rawIDToken (signature, issuer, audience,
// expiry) and returns the person it names. The error never contains the
// token; it wraps jit.ErrUnauthenticated unless the provider could not be
// reached (ErrIssuerUnavailable).
func (a *ClaimsAuthenticator) AuthenticateIDToken(ctx context.Context, rawIDToken string) (jit.Principal, error) {
	p, err := a.cfg.Issuer.Provider(ctx)
	if err != nil {
		return jit.Principal{}, err
	}
	tok, err := p.Verifier(&oidc.Config{ClientID: a.cfg.ClientID}).Verify(a.cfg.Issuer.ctx(ctx), rawIDToken)
	if err != nil {
		return jit.Principal{}, fmt.Errorf("%w: ID token: %w", jit.ErrUnauthenticated, err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return jit.Principal{}, fmt.Errorf("%w: ID token claims: %w", jit.ErrUnauthenticated, err)
	}
	name, _ := claims[a.cfg.UsernameClaim].(string)
	if name == "" {
		return jit.Principal{}, fmt.Errorf("%w: the ID token has no %s claim", jit.ErrUnauthenticated, a.cfg.UsernameClaim)
	}
	if v, ok := claims["email_verified"].(bool); a.cfg.UsernameClaim == "email" && ok && !v {
		return jit.Principal{}, fmt.Errorf("%w: the identity provider has not verified the email %s", jit.ErrUnauthenticated, name)
	}
	var groups []string
	switch g := claims[a.cfg.GroupsClaim].(type) {
	case string:
		groups = []string{g}
	case []any:
		for _, v := range g {
			if s, ok := v.(string); ok && s != "" {
				groups = append(groups, s)
			}
		}
	}
	return jit.Principal{Name: name, Groups: groups}, nil
}
