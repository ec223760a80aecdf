package approvalpage

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net/http"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// oauth2Config is the code flow's configuration at the discovered provider.
func (p *Page) oauth2Config(prov *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID: p.cfg.ClientID, ClientSecret: p.cfg.ClientSecret.Reveal(),
		Endpoint: prov.Endpoint(), RedirectURL: p.cfg.RedirectURL.String(), Scopes: p.cfg.Scopes,
	}
}

// login starts a sign-in: it stores a fresh state, nonce and PKCE verifier
// under a random ID the login cookie carries, and redirects to the provider.
func (p *Page) login(w http.ResponseWriter, r *http.Request) {
	prov, err := p.cfg.Issuer.Provider(r.Context())
	if err != nil {
		p.log.Error("approval page sign-in", "err", err)
		p.message(w, http.StatusServiceUnavailable, "The identity provider cannot be reached; try again later.")
		return
	}
	pl := pendingLogin{State: rand.Text(), Nonce: rand.Text(), Verifier: oauth2.GenerateVerifier()}
	id, err := p.store.put(r.Context(), "login", pl, loginTTL)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.setCookie(w, loginCookie, id, int(loginTTL.Seconds()))
	u := p.oauth2Config(prov).AuthCodeURL(pl.State, oidc.Nonce(pl.Nonce), oauth2.S256ChallengeOption(pl.Verifier))
	http.Redirect(w, r, u, http.StatusFound)
}

// errLogin is a refused callback; its text is what the person reads.
type errLogin string

func (e errLogin) Error() string { return string(e) }

// callback completes a sign-in: the login cookie's pending login (used
// once) must match the state; the code is exchanged with the PKCE
// verifier; the ID token is verified and must carry the nonce; the
// Authenticator names the person; a session starts.
func (p *Page) callback(w http.ResponseWriter, r *http.Request) {
	loginID := p.cookie(r, loginCookie)
	p.setCookie(w, loginCookie, "", -1)
	s, err := p.completeLogin(r.Context(), r, loginID)
	var refused errLogin
	switch {
	case errors.As(err, &refused):
		p.log.Warn("approval page sign-in refused", "reason", string(refused), "remote", r.RemoteAddr)
		p.message(w, http.StatusUnauthorized, "Sign-in refused: "+string(refused))
		return
	case err != nil:
		p.log.Error("approval page sign-in", "err", err)
		p.message(w, http.StatusServiceUnavailable, "Sign-in failed; see the jitproxy log, and try again.")
		return
	}
	id, err := p.store.put(r.Context(), "session", s, p.cfg.SessionTTL)
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.log.Info("approval page sign-in", "user", s.Name, "groups", s.Groups, "remote", r.RemoteAddr)
	setActor(w, s.principal())
	p.setCookie(w, sessionCookie, id, int(p.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// completeLogin checks the callback and returns the new session. A refusal
// is an errLogin; other errors are the provider's or Redis's.
func (p *Page) completeLogin(ctx context.Context, r *http.Request, loginID string) (*session, error) {
	q := r.URL.Query()
	var pl pendingLogin
	if err := p.store.get(ctx, "login", loginID, &pl, true); errors.Is(err, errNoSession) {
		return nil, errLogin("no sign-in is under way in this browser (or it took longer than 10 minutes); start again")
	} else if err != nil {
		return nil, err
	}
	if e := q.Get("error"); e != "" {
		// An OAuth error code is a short ASCII word; anything else is not
		// repeated to the person or the audit stream.
		if len(e) > 64 || strings.ContainsFunc(e, func(c rune) bool { return c != '_' && (c < 'a' || c > 'z') }) {
			e = "an error"
		}
		return nil, errLogin("the identity provider answered " + e)
	}
	if st := q.Get("state"); st == "" || subtle.ConstantTimeCompare([]byte(st), []byte(pl.State)) != 1 {
		return nil, errLogin("the state does not match the sign-in this browser started")
	}
	code := q.Get("code")
	if code == "" {
		return nil, errLogin("the identity provider sent no code")
	}
	prov, err := p.cfg.Issuer.Provider(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := p.oauth2Config(prov).Exchange(p.cfg.Issuer.ctx(ctx), code, oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		// The token endpoint's answer names no secret; the code is not in it.
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, errLogin("the identity provider refused the code: " + re.ErrorCode)
		}
		return nil, err
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return nil, errLogin("the identity provider sent no ID token")
	}
	idt, err := prov.Verifier(&oidc.Config{ClientID: p.cfg.ClientID}).Verify(p.cfg.Issuer.ctx(ctx), raw)
	if err != nil {
		return nil, errLogin("the ID token is not valid")
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(pl.Nonce)) != 1 {
		return nil, errLogin("the ID token's nonce does not match the sign-in this browser started")
	}
	by, err := p.cfg.Authenticator.AuthenticateIDToken(ctx, raw)
	if err != nil {
		p.log.Warn("approval page: the ID token names no person jitproxy accepts", "err", err)
		return nil, errLogin("jitproxy does not accept this identity")
	}
	if by.Name == "" || by.IsAgent() {
		return nil, errLogin("jitproxy does not accept this identity")
	}
	return &session{Name: by.Name, Groups: by.Groups, AuthMethod: by.AuthMethod, Identity: by.Identity, CSRF: rand.Text()}, nil
}

// logout ends the session and clears its cookie.
func (p *Page) logout(w http.ResponseWriter, r *http.Request) {
	if _, ok := p.checkPost(w, r); !ok {
		return
	}
	if err := p.store.del(r.Context(), "session", p.cookie(r, sessionCookie)); err != nil {
		p.fail(w, r, err)
		return
	}
	p.setCookie(w, sessionCookie, "", -1)
	p.message(w, http.StatusOK, "You are signed out of jitproxy.")
}
