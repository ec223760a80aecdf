package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
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

// Config configures a Provider.
type Config struct {
	// Client reaches Vault (address, TLS). The provider sets its token.
	// Required.
	Client *vaultapi.Client
	// Login obtains jitproxy's Vault token, for example with the kubernetes
	// auth method. It is called at first use, before the token expires and
	// when Vault refuses the token.
	// Nil: the client's token is used as it is, renewed when renewable.
	Login LoginFunc
	// Mount is the kubernetes secrets engine's path; default "kubernetes".
	Mount string
	// MaxTTL caps a lease; default 24h.
	MaxTTL time.Duration
	Now    func() time.Time
	Logger *slog.Logger
}

// Provider mints Kubernetes credentials through Vault. It is safe for
// concurrent use.
type Provider struct {
	cfg     Config
	session *session
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
	return &Provider{cfg: cfg, session: newSession(cfg.Client, cfg.Login, cfg.Now, cfg.Logger)}, nil
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
	s, err := p.session.write(ctx, path, data)
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
	return p.session.revoke(ctx, c.LeaseID)
}
