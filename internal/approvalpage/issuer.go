package approvalpage

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// Issuer is an OpenID provider, discovered on first use and then cached:
// a provider that cannot be reached when jitproxy starts does not stop
// jitproxy; sign-ins fail with ErrIssuerUnavailable until discovery
// succeeds, retried at each sign-in. It is safe for concurrent use.
type Issuer struct {
	url    string
	client *http.Client

	mu sync.Mutex
	p  *oidc.Provider
}

// NewIssuer returns the issuer at url (its discovery document is
// url/.well-known/openid-configuration). A nil client is one with a
// 10-second timeout; it is used for discovery, keys and token exchange.
func NewIssuer(url string, client *http.Client) *Issuer {
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	return &Issuer{url: url, client: client}
}

// URL returns the issuer's URL.
func (i *Issuer) URL() string { return i.url }

// ErrIssuerUnavailable says the OpenID provider's discovery document could
// not be read.
var ErrIssuerUnavailable = fmt.Errorf("the identity provider cannot be reached")

// Provider returns the discovered provider, discovering it now if it has
// not been yet. The error wraps ErrIssuerUnavailable.
func (i *Issuer) Provider(ctx context.Context) (*oidc.Provider, error) {
	i.mu.Lock()
	defer i.mu.Unlock()
	if i.p != nil {
		return i.p, nil
	}
	ctx, cancel := context.WithTimeout(i.ctx(ctx), 10*time.Second)
	defer cancel()
	p, err := oidc.NewProvider(ctx, i.url)
	if err != nil {
		return nil, fmt.Errorf("%w: discover %s: %w", ErrIssuerUnavailable, i.url, err)
	}
	i.p = p
	return p, nil
}

// ctx returns ctx carrying the issuer's HTTP client for go-oidc and oauth2.
func (i *Issuer) ctx(ctx context.Context) context.Context { return oidc.ClientContext(ctx, i.client) }
