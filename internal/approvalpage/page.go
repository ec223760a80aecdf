package approvalpage

import (
	"context"
	"crypto/subtle"
	_ "embed" // the style sheet
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Grants is what the page needs of jit.Service: the grants a person may
// see, and approving and denying as that person.
type Grants interface {
	List(ctx context.Context, by jit.Principal, f jit.ListFilter) ([]*jit.Grant, error)
	Approve(ctx context.Context, by jit.Principal, id, comment string) (*jit.Grant, error)
	Deny(ctx context.Context, by jit.Principal, id, reason string) (*jit.Grant, error)
}

// Authenticator turns a raw OpenID Connect ID token into the person it
// names. An error means the token is not accepted.
type Authenticator interface {
	AuthenticateIDToken(ctx context.Context, rawIDToken string) (jit.Principal, error)
}

// Config configures a Page.
type Config struct {
	// Grants serves and decides the grant requests. Required.
	Grants Grants
	// Authenticator maps the verified sign-in's ID token to a person. Required.
	Authenticator Authenticator
	// Audit records every sign-in and every form posted, as admin.request
	// events. Required.
	Audit Auditor
	// Redis holds sessions and pending sign-ins. Required.
	Redis redis.UniversalClient
	// Issuer is the OpenID provider people sign in with. Required.
	Issuer *Issuer
	// ClientID and ClientSecret are the page's client at the provider. Required.
	ClientID     string
	ClientSecret secret.Value
	// RedirectURL is the callback URL registered at the provider, ending
	// in CallbackPath. Required. Its scheme decides the cookies: https
	// makes them Secure with the __Host- prefix.
	RedirectURL *url.URL
	// Scopes asked for; default openid, email, profile.
	Scopes []string
	// SessionTTL is how long a sign-in lasts; default 8h.
	SessionTTL time.Duration
	// KeyPrefix prefixes the Redis keys; default "jitproxy:".
	KeyPrefix string
	// RedisTimeout bounds every Redis call; default 2s.
	RedisTimeout time.Duration
	// Now defaults to time.Now. Logger defaults to slog.Default().
	Now    func() time.Time
	Logger *slog.Logger
}

// Paths of the page on the admin listener.
const (
	Prefix       = "/ui/"
	CallbackPath = "/ui/callback"
)

// loginTTL bounds the time from the redirect to the provider to the callback.
const loginTTL = 10 * time.Minute

// Page serves the approval page under Prefix. It is safe for concurrent use.
type Page struct {
	cfg    Config
	store  *store
	log    *slog.Logger
	mux    *http.ServeMux
	tls    bool
	origin *http.CrossOriginProtection
}

//go:embed assets/style.css
var styleCSS []byte

// New validates cfg, reporting every missing dependency, and returns the page.
func New(cfg Config) (*Page, error) {
	var errs []error
	if cfg.Grants == nil {
		errs = append(errs, errors.New("Grants is required"))
	}
	if cfg.Authenticator == nil {
		errs = append(errs, errors.New("Authenticator is required"))
	}
	if cfg.Redis == nil {
		errs = append(errs, errors.New("Redis is required"))
	}
	if cfg.Audit == nil {
		errs = append(errs, errors.New("Audit is required"))
	}
	if cfg.Issuer == nil {
		errs = append(errs, errors.New("Issuer is required"))
	}
	if cfg.ClientID == "" || cfg.ClientSecret.IsZero() {
		errs = append(errs, errors.New("ClientID and ClientSecret are required"))
	}
	if u := cfg.RedirectURL; u == nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Path != CallbackPath {
		errs = append(errs, fmt.Errorf("RedirectURL must be an http(s) URL with the path %s", CallbackPath))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("approvalpage: %w", err)
	}
	if cfg.Scopes == nil {
		cfg.Scopes = []string{"openid", "email", "profile"}
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	if cfg.KeyPrefix == "" {
		cfg.KeyPrefix = "jitproxy:"
	}
	if cfg.RedisTimeout <= 0 {
		cfg.RedisTimeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	p := &Page{
		cfg: cfg, log: cfg.Logger, mux: http.NewServeMux(), tls: cfg.RedirectURL.Scheme == "https",
		store:  &store{rdb: cfg.Redis, prefix: cfg.KeyPrefix, timeout: cfg.RedisTimeout},
		origin: http.NewCrossOriginProtection(),
	}
	p.mux.HandleFunc("GET /ui/{$}", p.index)
	p.mux.HandleFunc("GET /ui/login", p.login)
	p.mux.HandleFunc("GET "+CallbackPath, p.callback)
	p.mux.HandleFunc("POST /ui/logout", p.logout)
	p.mux.HandleFunc("POST /ui/grants/{id}/approve", p.decide(cfg.Grants.Approve))
	p.mux.HandleFunc("POST /ui/grants/{id}/deny", p.decide(cfg.Grants.Deny))
	p.mux.HandleFunc("GET /ui/style.css", p.style)
	return p, nil
}

// ServeHTTP serves the page's paths, each answer with the security headers.
func (p *Page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Cross-Origin-Opener-Policy", "same-origin")
	h.Set("Cache-Control", "no-store")
	if p.tls {
		h.Set("Strict-Transport-Security", "max-age=31536000")
	}
	if !audited(r) {
		p.mux.ServeHTTP(w, r)
		return
	}
	c := &call{ResponseWriter: w}
	p.mux.ServeHTTP(c, r) // which sets r.Pattern, the operation recorded

	p.record(r, c)
}

func (p *Page) style(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(styleCSS)
}

// Cookie names: with TLS, the __Host- prefix pins them to this host, path
// / and Secure.
func (p *Page) cookieName(base string) string {
	if p.tls {
		return "__Host-" + base
	}
	return base
}

// setCookie sets (or, with maxAge < 0, clears) a cookie: HttpOnly,
// SameSite=Lax (the callback arrives as a top-level navigation from the
// provider, which Strict would strip), Secure with TLS.
func (p *Page) setCookie(w http.ResponseWriter, base, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: p.cookieName(base), Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: p.tls, SameSite: http.SameSiteLaxMode,
	})
}

func (p *Page) cookie(r *http.Request, base string) string {
	c, err := r.Cookie(p.cookieName(base))
	if err != nil {
		return ""
	}
	return c.Value
}

const (
	sessionCookie = "jitproxy-page"
	loginCookie   = "jitproxy-login"
)

// current returns the signed-in person's session and its ID; an unknown
// or expired session is errNoSession.
func (p *Page) current(r *http.Request) (*session, string, error) {
	id := p.cookie(r, sessionCookie)
	var s session
	if err := p.store.get(r.Context(), "session", id, &s, false); err != nil {
		return nil, "", err
	}
	return &s, id, nil
}

func (p *Page) index(w http.ResponseWriter, r *http.Request) {
	s, _, err := p.current(r)
	if errors.Is(err, errNoSession) {
		http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
		return
	}
	if err != nil {
		p.fail(w, r, err)
		return
	}
	p.render(w, r, s, http.StatusOK, "")
}

// decide returns the handler that approves or denies (with do) a grant
// as the signed-in person, after the cross-origin and CSRF checks.
func (p *Page) decide(do func(ctx context.Context, by jit.Principal, id, comment string) (*jit.Grant, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := p.checkPost(w, r)
		if !ok {
			return
		}
		if _, err := do(r.Context(), s.principal(), r.PathValue("id"), r.PostFormValue("comment")); err != nil {
			status, msg := p.answer(r, err)
			p.render(w, r, s, status, msg)
			return
		}
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
	}
}

// checkPost checks a form post: same origin, a session, and the session's
// CSRF token. On failure it has answered.
func (p *Page) checkPost(w http.ResponseWriter, r *http.Request) (*session, bool) {
	if err := p.origin.Check(r); err != nil {
		p.message(w, http.StatusForbidden, "Refused: the form was posted from another site.")
		return nil, false
	}
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		p.message(w, http.StatusBadRequest, "The form could not be read.")
		return nil, false
	}
	s, _, err := p.current(r)
	if errors.Is(err, errNoSession) {
		p.message(w, http.StatusUnauthorized, "You are not signed in (or your session has ended). Sign in and try again.")
		return nil, false
	}
	if err != nil {
		p.fail(w, r, err)
		return nil, false
	}
	setActor(w, s.principal())
	if t := r.PostFormValue("csrf"); t == "" || subtle.ConstantTimeCompare([]byte(t), []byte(s.CSRF)) != 1 {
		p.message(w, http.StatusForbidden, "Refused: the form's token does not match your session. Reload the page and try again.")
		return nil, false
	}
	return s, true
}

// answer maps an error of Approve or Deny to a status and a message safe
// to show: jit's own messages for the errors it defines, a generic one
// (and a log line) otherwise.
func (p *Page) answer(r *http.Request, err error) (int, string) {
	for _, m := range []struct {
		err    error
		status int
	}{
		{jit.ErrForbidden, http.StatusForbidden}, {jit.ErrLocked, http.StatusForbidden},
		{jit.ErrNotFound, http.StatusNotFound}, {jit.ErrInvalid, http.StatusBadRequest},
		{jit.ErrConflict, http.StatusConflict},
	} {
		if errors.Is(err, m.err) {
			return m.status, err.Error()
		}
	}
	p.log.Error("approval page", "method", r.Method, "path", r.URL.Path, "err", err)
	if errors.Is(err, jit.ErrUnavailable) {
		return http.StatusServiceUnavailable, "jitproxy's state store is unavailable; nothing was changed; try again"
	}
	return http.StatusInternalServerError, "internal error; see the jitproxy log"
}

// fail answers an unexpected error with a generic message and logs it.
func (p *Page) fail(w http.ResponseWriter, r *http.Request, err error) {
	status, msg := p.answer(r, err)
	p.message(w, status, msg)
}

// message answers a page with only a message and a link to the page.
func (p *Page) message(w http.ResponseWriter, status int, msg string) {
	setRefusal(w, status, msg)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	w.Write(writeMessage(msg))
}
