// Package tokenrequest mints Kubernetes ServiceAccount tokens with the
// TokenRequest API (POST .../serviceaccounts/NAME/token) through client-go.
//
// The access policy names the ServiceAccount, whose RBAC bindings in the
// cluster bound what the token can do:
//
//	credential:
//	  provider: tokenrequest
//	  options:
//	    serviceAccount: jitproxy-pod-reader   # required
//	    serviceAccountNamespace: tools        # default: the grant's namespace
//
// Tokens are asked for the grant's remaining lifetime, but never less than
// the 10 minutes kube-apiserver accepts; the broker stops using a token when
// its grant ends, whichever comes first.
package tokenrequest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/kubernetes"

	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Name is the provider's name in access policies.
const Name = "tokenrequest"

// MinTTL is the shortest token lifetime kube-apiserver issues.
const MinTTL = 10 * time.Minute

// Config configures a Provider.
type Config struct {
	// Client talks to the target cluster as jitproxy itself, which needs
	// create on serviceaccounts/token for the ServiceAccounts policies name.
	// Required.
	Client kubernetes.Interface
	// Audiences of the tokens; empty means the apiserver's default.
	Audiences []string
	// MaxTTL caps a token's lifetime; default 24h.
	MaxTTL time.Duration
	Now    func() time.Time
}

// Provider mints ServiceAccount tokens. It is safe for concurrent use.
type Provider struct {
	cfg Config
}

var _ broker.Provider = (*Provider)(nil)

// New returns a Provider.
func New(cfg Config) (*Provider, error) {
	if cfg.Client == nil {
		return nil, errors.New("tokenrequest: Config.Client is required")
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = 24 * time.Hour
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Provider{cfg: cfg}, nil
}

// ValidateOptions requires serviceAccount and allows serviceAccountNamespace.
func (p *Provider) ValidateOptions(opts map[string]string) error {
	var errs []error
	for k, v := range opts {
		switch k {
		case "serviceAccount", "serviceAccountNamespace":
			if msgs := validation.IsDNS1123Subdomain(v); len(msgs) > 0 {
				errs = append(errs, fmt.Errorf("option %s %q: %s", k, v, msgs[0]))
			}
		default:
			errs = append(errs, fmt.Errorf("unknown option %q (want serviceAccount, serviceAccountNamespace)", k))
		}
	}
	if opts["serviceAccount"] == "" {
		errs = append(errs, errors.New("option serviceAccount is required"))
	}
	return errors.Join(errs...)
}

// Mint requests a token for the policy's ServiceAccount.
func (p *Provider) Mint(ctx context.Context, req broker.Request) (broker.Credential, error) {
	sa := req.Options["serviceAccount"]
	ns := req.Options["serviceAccountNamespace"]
	if ns == "" {
		ns = req.Namespace
	}
	if sa == "" || ns == "" {
		return broker.Credential{}, errors.New("the access policy names no service account namespace for a cluster-wide grant")
	}
	ttl := min(max(req.GrantExpiresAt.Sub(p.cfg.Now()), MinTTL), p.cfg.MaxTTL)
	secs := int64(math.Ceil(ttl.Seconds()))
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{
		Audiences:         p.cfg.Audiences,
		ExpirationSeconds: &secs,
	}}
	out, err := p.cfg.Client.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa, tr, metav1.CreateOptions{})
	if err != nil {
		return broker.Credential{}, fmt.Errorf("request token for service account %s/%s: %w", ns, sa, err)
	}
	if out.Status.Token == "" {
		return broker.Credential{}, fmt.Errorf("request token for service account %s/%s: empty token", ns, sa)
	}
	return broker.Credential{
		Token:     secret.Value(out.Status.Token),
		ExpiresAt: out.Status.ExpirationTimestamp.Time,
		Subject:   "system:serviceaccount:" + ns + ":" + sa,
	}, nil
}
