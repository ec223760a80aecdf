// Package vault mints Kubernetes credentials with Vault's kubernetes secrets
// engine (POST MOUNT/creds/ROLE): for each grant Vault creates a
// ServiceAccount, a Role with the Vault role's generated rules and a
// RoleBinding, and returns the ServiceAccount's token under a lease. When
// the grant ends, the broker releases the credential and this provider
// revokes the lease, and Vault deletes what it created.
//
// The access policy names the Vault role:
//
//	credential:
//	  provider: vault
//	  options:
//	    role: pod-reader             # required: a role of the secrets engine
//	    namespace: tools             # default: the grant's namespace
//	    clusterRoleBinding: "true"   # bind cluster-wide (cluster-wide grants)
//
// jitproxy authenticates to Vault with a token, or (the in-cluster default)
// with Vault's kubernetes auth method, logging in again before its Vault
// token expires, and at once when Vault refuses it (a Vault restarted or
// restored without its storage no longer knows it): the call that met the
// refusal is made again with the new token.
package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"

	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Name is the provider's name in access policies.
const Name = "vault"

// MinTTL is the shortest token lifetime kube-apiserver issues, and so the
// shortest lease asked of Vault.
const MinTTL = 10 * time.Minute

// tokenRefreshWindow: jitproxy's own Vault token is renewed or replaced when
// less than this is left.
const tokenRefreshWindow = time.Minute

// Config configures a Provider.
type Config struct {
	// Client reaches Vault (address, TLS). The provider sets its token.
	// Required.
	Client *vaultapi.Client
	// Login obtains jitproxy's Vault token, for example with the kubernetes
	// auth method. It is called at first use, before the token expires and
	// when Vault refuses the token.
	// Nil: the client's token is used as it is, renewed when renewable.
	Login func(ctx context.Context, c *vaultapi.Client) (*vaultapi.Secret, error)
	// Mount is the kubernetes secrets engine's path; default "kubernetes".
	Mount string
	// MaxTTL caps a lease; default 24h.
	MaxTTL time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Provider mints credentials through Vault. It is safe for concurrent use.
type Provider struct {
	cfg Config

	mu           sync.Mutex
	haveToken    bool
	tokenExpires time.Time // zero: does not expire
	renewable    bool
}

var (
	_ broker.Provider = (*Provider)(nil)
	_ broker.Releaser = (*Provider)(nil)
)

// New returns a Provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, errors.New("vault: Config.Client is required")
	}
	if cfg.Mount == "" {
		cfg.Mount = "kubernetes"
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Provider{cfg: cfg}, nil
}

// ValidateOptions requires role and allows namespace and clusterRoleBinding.
func (p *Provider) ValidateOptions(opts map[string]string) error {
	var errs []error
	for k, v := range opts {
		switch k {
		case "role", "namespace":
		case "clusterRoleBinding":
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, fmt.Errorf("option clusterRoleBinding %q: want true or false", v))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown option %q (want role, namespace, clusterRoleBinding)", k))
		}
	}
	if opts["role"] == "" {
		errs = append(errs, errors.New("option role is required"))
	}
	return errors.Join(errs...)
}

// Mint asks Vault for a ServiceAccount token of the policy's role in the
// grant's namespace, leased for the grant's remaining lifetime (at least
// MinTTL).
func (p *Provider) Mint(ctx context.Context, req broker.Request) (broker.Credential, error) {
	role := req.Options["role"]
	ns := req.Options["namespace"]
	if ns == "" {
		ns = req.Namespace
	}
	if role == "" || ns == "" {
		return broker.Credential{}, errors.New("the access policy names no Vault role, or no namespace for a cluster-wide grant")
	}
	now := p.cfg.Now()
	ttl := min(max(req.GrantExpiresAt.Sub(now), MinTTL), p.cfg.MaxTTL)
	data := map[string]any{
		"kubernetes_namespace": ns,
		"ttl":                  strconv.FormatInt(int64(math.Ceil(ttl.Seconds())), 10) + "s",
	}
	if b, _ := strconv.ParseBool(req.Options["clusterRoleBinding"]); b {
		data["cluster_role_binding"] = true
	}
	path := p.cfg.Mount + "/creds/" + role
	var s *vaultapi.Secret
	err := p.withToken(ctx, func() error {
		var err error
		s, err = p.cfg.Client.Logical().WriteWithContext(ctx, path, data)
		return err
	})
	if err != nil {
		return broker.Credential{}, fmt.Errorf("vault %s: %w", path, err)
	}
	if s == nil || s.LeaseID == "" {
		return broker.Credential{}, fmt.Errorf("vault %s: answer without a lease", path)
	}
	token, _ := s.Data["service_account_token"].(string)
	name, _ := s.Data["service_account_name"].(string)
	saNS, _ := s.Data["service_account_namespace"].(string)
	if token == "" {
		// A lease without a token is of no use; do not leave it behind.
		p.Release(ctx, broker.Credential{LeaseID: s.LeaseID})
		return broker.Credential{}, fmt.Errorf("vault %s: answer without service_account_token", path)
	}
	return broker.Credential{
		Token:     secret.Value(token),
		ExpiresAt: now.Add(time.Duration(s.LeaseDuration) * time.Second),
		Subject:   "system:serviceaccount:" + saNS + ":" + name,
		LeaseID:   s.LeaseID,
	}, nil
}

// Release revokes the credential's lease; Vault then deletes the
// ServiceAccount, Role and RoleBinding it created.
func (p *Provider) Release(ctx context.Context, c broker.Credential) error {
	if c.LeaseID == "" {
		return nil
	}
	err := p.withToken(ctx, func() error { return p.cfg.Client.Sys().RevokeWithContext(ctx, c.LeaseID) })
	if err != nil {
		return fmt.Errorf("vault revoke lease %s: %w", c.LeaseID, err)
	}
	return nil
}

// withToken makes call with jitproxy's Vault token. When Vault refuses a
// token that was not issued for this call (Vault lost its storage, or the
// token was revoked early) and Login can replace it, it logs in again and
// makes call once more, so that no request fails for a stale token. A
// refusal of a fresh token is a real denial and is returned.
func (p *Provider) withToken(ctx context.Context, call func() error) error {
	fresh, err := p.ensureToken(ctx)
	if err != nil {
		return err
	}
	token := p.cfg.Client.Token()
	err = call()
	if !isDenial(err) {
		return err
	}
	p.forgetToken(token)
	if fresh || p.cfg.Login == nil {
		return err
	}
	if _, err := p.ensureToken(ctx); err != nil {
		return err
	}
	return call()
}

// ensureToken logs in, or renews the token, when it is missing or close to
// expiry. It reports whether it logged in.
func (p *Provider) ensureToken(ctx context.Context) (loggedIn bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.cfg.Now()
	if p.haveToken && (p.tokenExpires.IsZero() || now.Before(p.tokenExpires.Add(-tokenRefreshWindow))) {
		return false, nil
	}
	if p.cfg.Login != nil {
		s, err := p.cfg.Login(ctx, p.cfg.Client)
		if err != nil {
			return false, fmt.Errorf("vault login: %w", err)
		}
		if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
			return false, errors.New("vault login: answer without a token")
		}
		p.cfg.Client.SetToken(s.Auth.ClientToken)
		p.setToken(now, s.Auth.LeaseDuration, s.Auth.Renewable)
		return true, nil
	}
	if p.haveToken && p.renewable {
		s, err := p.cfg.Client.Auth().Token().RenewSelfWithContext(ctx, 0)
		if err == nil && s != nil && s.Auth != nil {
			p.setToken(now, s.Auth.LeaseDuration, s.Auth.Renewable)
			return false, nil
		}
		p.cfg.Logger.Warn("renew vault token", "err", err)
	}
	s, err := p.cfg.Client.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil {
		return false, fmt.Errorf("vault token lookup: %w", err)
	}
	ttl, _ := s.TokenTTL()
	renewable, _ := s.TokenIsRenewable()
	p.setToken(now, int(ttl.Seconds()), renewable)
	if p.haveToken && ttl > 0 && ttl < tokenRefreshWindow && !renewable {
		return false, errors.New("vault token is about to expire and cannot be renewed")
	}
	return false, nil
}

func (p *Provider) setToken(now time.Time, leaseSeconds int, renewable bool) {
	p.haveToken, p.renewable = true, renewable
	p.tokenExpires = time.Time{}
	if leaseSeconds > 0 {
		p.tokenExpires = now.Add(time.Duration(leaseSeconds) * time.Second)
	}
}

// isDenial reports whether Vault refused the request with 403, which is
// also its answer to a token it does not know.
func isDenial(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

// forgetToken makes the next call log in (or look the token up) again,
// unless another call has replaced the refused token already.
func (p *Provider) forgetToken(refused string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cfg.Client.Token() == refused {
		p.haveToken = false
	}
}
