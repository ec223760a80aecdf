package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/approvalpage"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/jit/oidcauth"
	"github.com/jitproxy/jitproxy/internal/secret"
)

var (
	_ approvalpage.Grants        = (*jit.Service)(nil)
	_ approvalpage.Authenticator = (*oidcauth.Authenticator)(nil)
)

// buildPage returns the approval page of an enabled admin.page, or nil.
// People sign in as a web client of an admin.oidc provider, whose
// verifier and user mapping name them (c.issuers must be built). The
// provider is discovered at the first sign-in, not here: jitproxy starts
// while it is unreachable, and the page answers 503 until it is.
func buildPage(c *components) (*approvalpage.Page, error) {
	pc := c.cfg.Admin.Page
	if !pc.Enabled {
		return nil, nil
	}
	i := slices.IndexFunc(c.cfg.Admin.OIDC, func(o OIDCConfig) bool { return o.Name == pc.OIDC.Provider })
	if i < 0 {
		return nil, fmt.Errorf("admin.page.oidc.provider %q is not an admin.oidc provider", pc.OIDC.Provider) // validated
	}
	prov := c.cfg.Admin.OIDC[i]
	auth, ok := c.issuers[prov.Issuer].(*oidcauth.Authenticator)
	if !ok {
		return nil, fmt.Errorf("admin.page: the verifier of admin.oidc %s is missing", prov.Name)
	}
	b, err := os.ReadFile(pc.OIDC.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("admin.page.oidc.client_secret_file: %w", err)
	}
	sec := secret.Value(strings.TrimSpace(string(b)))
	if sec.IsZero() {
		return nil, fmt.Errorf("admin.page.oidc.client_secret_file %s is empty", pc.OIDC.ClientSecretFile)
	}
	transport, err := upstreamTransport(prov.CAFile)
	if err != nil {
		return nil, fmt.Errorf("admin.oidc %s: ca_file: %w", prov.Name, err)
	}
	issuer := approvalpage.NewIssuer(prov.Issuer, &http.Client{Transport: transport, Timeout: 10 * time.Second})
	redirect, _ := url.Parse(pc.OIDC.RedirectURL) // validated
	return approvalpage.New(approvalpage.Config{
		Grants: c.jit, Authenticator: auth, Audit: c.recorder, Redis: c.redis, Issuer: issuer,
		ClientID: pc.OIDC.ClientID, ClientSecret: sec, RedirectURL: redirect, Scopes: pc.OIDC.Scopes,
		SessionTTL: pc.SessionTTL, KeyPrefix: c.cfg.Redis.keyPrefix(),
		Logger: c.log.With("component", "approvalpage"),
	})
}

// adminHandler serves the admin API and, when enabled, the approval page
// under /ui/ (with / redirecting to it).
func adminHandler(api http.Handler, page *approvalpage.Page) http.Handler {
	if page == nil {
		return api
	}
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle(approvalpage.Prefix, page)
	mux.Handle("GET /{$}", http.RedirectHandler(approvalpage.Prefix, http.StatusSeeOther))
	return mux
}
