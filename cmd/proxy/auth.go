package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/jit/oidcauth"
	"github.com/jitproxy/jitproxy/internal/jit/tokenreview"
)

// validateAuth checks admin.users, admin.oidc and admin.service_accounts
// as far as the file alone tells; jit.NewUsers checks the identities
// against the static identities too, at start.
func (c *Config) validateAuth() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	issuers := map[string]string{}
	issuer := func(where, iss string) {
		u, err := url.Parse(iss)
		switch {
		case iss == "":
			bad("%s: issuer is required", where)
			return
		case err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "":
			bad("%s: issuer %q: want an https URL", where, iss)
		case u.Scheme == "http" && !isLoopback(u.Hostname()):
			bad("%s: issuer %q: http only on a loopback address; want https", where, iss)
		case u.Scheme != "https" && u.Scheme != "http":
			bad("%s: issuer %q: want an https URL", where, iss)
		}
		if other, dup := issuers[iss]; dup {
			bad("%s: issuer %q is also %s's: each issuer has one verifier", where, iss, other)
		}
		issuers[iss] = where
	}
	names := map[string]bool{}
	for i, o := range c.Admin.OIDC {
		where := fmt.Sprintf("admin.oidc[%d] (%s)", i, o.Name)
		switch {
		case o.Name == "" || strings.ContainsAny(o.Name, ": \t"):
			bad("%s: name is required, without colons or spaces", where)
		case names[o.Name]:
			bad("%s: name used twice", where)
		}
		names[o.Name] = true
		issuer(where, o.Issuer)
		if len(o.ClientIDs) == 0 || slices.Contains(o.ClientIDs, "") {
			bad("%s: client_ids: list at least one, none empty", where)
		}
		if !slices.Contains([]string{"", oidcauth.UnmappedRefuse, oidcauth.UnmappedClaim}, o.UnmappedUsers) {
			bad("%s: unmapped_users %q: want refuse or claim", where, o.UnmappedUsers)
		}
	}
	targets := map[string]bool{}
	for i, sa := range c.Admin.ServiceAccounts {
		where := fmt.Sprintf("admin.service_accounts[%d] (%s)", i, sa.Target)
		i := slices.IndexFunc(c.Targets, func(t TargetConfig) bool { return t.Name == sa.Target })
		switch {
		case i < 0 || c.Targets[i].Kind == "aws":
			bad("%s: target %q: want the name of a kubernetes target", where, sa.Target)
		case targets[sa.Target]:
			bad("%s: target listed twice", where)
		}
		targets[sa.Target] = true
		issuer(where, sa.Issuer)
		if slices.Contains(sa.Audiences, "") {
			bad("%s: audiences: none may be empty", where)
		}
		if sa.CacheTTL < 0 {
			bad("%s: cache_ttl must not be negative", where)
		}
	}
	for i, u := range c.Admin.Users {
		for _, id := range u.Identities {
			if _, err := jit.ParseIdentity(id); err != nil {
				bad("admin.users[%d] (%s): %v", i, u.Name, err)
			}
		}
	}
	return errors.Join(errs...)
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// buildUsers maps the configured users over the static identities ids.
func buildUsers(cfg *Config, ids []jit.Identity) (*jit.Users, error) {
	src := jit.IdentitySources{}
	for _, id := range ids {
		src.Tokens = append(src.Tokens, id.Name)
	}
	for _, o := range cfg.Admin.OIDC {
		src.OIDC = append(src.OIDC, o.Name)
	}
	for _, sa := range cfg.Admin.ServiceAccounts {
		src.ServiceAccounts = append(src.ServiceAccounts, sa.Target)
	}
	users := make([]jit.User, len(cfg.Admin.Users))
	for i, u := range cfg.Admin.Users {
		users[i] = jit.User{Name: u.Name, Groups: u.Groups, Identities: u.Identities}
	}
	u, err := jit.NewUsers(users, src)
	if err != nil {
		return nil, fmt.Errorf("admin.users: %w", err)
	}
	return u, nil
}

// buildIssuers returns the verifiers of bearer tokens by issuer: the OIDC
// providers and the clusters that review ServiceAccount tokens. Each OIDC
// provider is discovered now if it can be; one that cannot is logged and
// tried again when its tokens arrive (they are refused with 503 until
// then), so that an identity provider's outage does not stop jitproxy.
func buildIssuers(ctx context.Context, cfg *Config, users *jit.Users, bt *builtTargets, log *slog.Logger) (map[string]jit.TokenVerifier, error) {
	out := map[string]jit.TokenVerifier{}
	var errs []error
	for _, o := range cfg.Admin.OIDC {
		transport, err := upstreamTransport(o.CAFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("admin.oidc %s: ca_file: %w", o.Name, err))
			continue
		}
		a, err := oidcauth.New(oidcauth.Config{
			Name: o.Name, Issuer: o.Issuer, ClientIDs: o.ClientIDs, UsernameClaim: o.UsernameClaim,
			GroupsClaim: o.GroupsClaim, GroupsPrefix: o.GroupsPrefix, RequiredClaims: o.RequiredClaims,
			UnmappedUsers: o.UnmappedUsers, Users: users,
			HTTPClient: &http.Client{Transport: transport, Timeout: 10 * time.Second},
			Logger:     log.With("component", "oidc"),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("admin.oidc %s: %w", o.Name, err))
			continue
		}
		if err := a.Discover(ctx); err != nil {
			log.Warn("OIDC provider not reachable; its tokens are refused with 503 until it is, tried again as they arrive", "provider", o.Name, "err", err)
		}
		out[o.Issuer] = a
	}
	for _, sa := range cfg.Admin.ServiceAccounts {
		cs := bt.kube[sa.Target]
		if cs == nil {
			errs = append(errs, fmt.Errorf("admin.service_accounts: target %s is not a kubernetes target", sa.Target))
			continue
		}
		a, err := tokenreview.New(tokenreview.Config{
			Target: sa.Target, Reviews: cs.AuthenticationV1().TokenReviews(), Audiences: sa.Audiences,
			Users: users, CacheTTL: sa.CacheTTL, Logger: log.With("component", "tokenreview"),
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("admin.service_accounts %s: %w", sa.Target, err))
			continue
		}
		out[sa.Issuer] = a
	}
	return out, errors.Join(errs...)
}
