package main

import (
	"fmt"
	"net/http"
	"net/url"
	"os"
	"strings"

	"github.com/jitproxy/jitproxy/internal/approvalpage"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

var (
	_ approvalpage.Grants        = (*jit.Service)(nil)
	_ approvalpage.Authenticator = (*approvalpage.ClaimsAuthenticator)(nil)
)

// buildPage returns the approval page of an enabled admin.page, or nil.
// The provider is discovered at the first sign-in, not here: jitproxy
// starts while it is unreachable, and the page answers 503 until it is.
func buildPage(c *components) (*approvalpage.Page, error) {
	pc := c.cfg.Admin.Page
	if !pc.Enabled {
		return nil, nil
	}
	b, err := os.ReadFile(pc.OIDC.ClientSecretFile)
	if err != nil {
		return nil, fmt.Errorf("admin.page.oidc.client_secret_file: %w", err)
	}
	sec := secret.Value(strings.TrimSpace(string(b)))
	if sec.IsZero() {
		return nil, fmt.Errorf("admin.page.oidc.client_secret_file %s is empty", pc.OIDC.ClientSecretFile)
	}
	issuer := approvalpage.NewIssuer(pc.OIDC.Issuer, nil)
	auth, err := approvalpage.NewClaimsAuthenticator(approvalpage.ClaimsConfig{
		Issuer: issuer, ClientID: pc.OIDC.ClientID, UsernameClaim: pc.OIDC.UsernameClaim, GroupsClaim: pc.OIDC.GroupsClaim,
	})
	if err != nil {
		return nil, err
	}
	redirect, _ := url.Parse(pc.OIDC.RedirectURL) // validated
	return approvalpage.New(approvalpage.Config{
		Grants: c.jit, Authenticator: auth, Redis: c.redis, Issuer: issuer,
		ClientID: pc.OIDC.ClientID, ClientSecret: sec, RedirectURL: redirect, Scopes: pc.OIDC.Scopes,
		SessionTTL: pc.SessionTTL, KeyPrefix: c.cfg.Redis.KeyPrefix,
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
