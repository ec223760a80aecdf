package jit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// APIConfig configures the admin API.
type APIConfig struct {
	// ProxyURL is the forward proxy's address as agents reach it, for example
	// http://127.0.0.1:8080. Session answers embed the session credential in it.
	ProxyURL *url.URL
	// CACertPEM is the CA certificate agents must trust.
	CACertPEM []byte
	// Targets describes the targets agents may reach through the proxy.
	Targets []TargetInfo
	// AuditStats, if set, returns the audit sinks' counters, which admins
	// read at GET /v1/audit/sinks.
	AuditStats func() []audit.Stats
	// Issuers verify bearer tokens that are no static token, keyed by the
	// issuer (iss) the token claims: OIDC providers and clusters that
	// review ServiceAccount tokens. Nil: static tokens only.
	Issuers map[string]TokenVerifier
	// Profiles, if set, reads the profiles of learning grants, served at
	// GET /v1/profiles/{id} to those who may see the grant. Nil: that
	// route answers 404.
	Profiles ProfileReader
	Logger   *slog.Logger
}

// TargetInfo tells an agent how to reach one target through the proxy.
type TargetInfo struct {
	Name string `json:"name"`
	Kind string `json:"kind"`
	// Server is the URL the agent's tool should address, for example
	// https://kubernetes.demo for a kubeconfig; "" for an AWS target whose
	// agents address AWS's own endpoints.
	Server string `json:"server"`
	// Region is the region an AWS target's agents should use; "" for the
	// agent's own choice.
	Region string `json:"region,omitempty"`
	// PathStyle is true when an AWS target's agents should name S3 buckets
	// in the path (the target's upstream serves every bucket under one host).
	PathStyle bool `json:"path_style,omitempty"`
}

// API serves the admin API: sessions for runners; grant requests,
// approvals, denials and revocations for people and agents.
type API struct {
	svc *Service
	cfg APIConfig
	log *slog.Logger
	mux *http.ServeMux
}

// NewAPI returns the admin API handler for svc.
func NewAPI(svc *Service, cfg APIConfig) *API {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	a := &API{svc: svc, cfg: cfg, log: cfg.Logger, mux: http.NewServeMux()}
	a.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	a.mux.HandleFunc("GET /v1/ca.pem", a.caCert)
	a.handle("POST /v1/sessions", a.createSession)
	a.handle("DELETE /v1/sessions/{id}", a.endSession)
	a.handle("GET /v1/policies", a.listPolicies)
	a.handle("POST /v1/grants", a.requestGrant)
	a.handle("GET /v1/grants", a.listGrants)
	a.handle("GET /v1/grants/{id}", a.getGrant)
	a.handle("GET /v1/profiles/{id}", a.getProfile)
	a.handle("POST /v1/grants/{id}/approve", a.approve)
	a.handle("POST /v1/grants/{id}/deny", a.deny)
	a.handle("POST /v1/grants/{id}/revoke", a.revoke)
	a.handle("GET /v1/audit/sinks", a.auditSinks)
	a.handle("POST /v1/locks", a.createLock)
	a.handle("GET /v1/locks", a.listLocks)
	a.handle("DELETE /v1/locks/{id}", a.removeLock)
	return a
}

func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

type apiHandler func(ctx context.Context, by Principal, r *http.Request) (status int, body any, err error)

// handle registers h behind authentication and maps its result to JSON.
func (a *API) handle(pattern string, h apiHandler) {
	a.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		by, err := a.authenticate(r)
		status, body := 0, any(nil)
		if err == nil {
			status, body, err = h(r.Context(), by, r)
		}
		var msg string
		if err != nil {
			status, msg = a.writeError(w, r, err)
		} else {
			writeJSON(w, status, body)
		}
		a.recordCall(r, pattern, by, status, msg)
	})
}

// auditSinks answers the audit sinks' counters, to admins.
func (a *API) auditSinks(_ context.Context, by Principal, _ *http.Request) (int, any, error) {
	if !a.svc.isAdmin(by) {
		return 0, nil, fmt.Errorf("%w: only admins read the audit sinks' counters", ErrForbidden)
	}
	stats := []audit.Stats{}
	if a.cfg.AuditStats != nil {
		stats = a.cfg.AuditStats()
	}
	return http.StatusOK, stats, nil
}

// recordCall records an admin API call: who (when authenticated), what,
// from where, and the outcome. The event carries no request body.
func (a *API) recordCall(r *http.Request, pattern string, by Principal, status int, errMsg string) {
	e := audit.Event{
		Type:  audit.TypeAdminRequest,
		Admin: &audit.AdminCall{Operation: pattern, Path: r.URL.Path, SourceAddr: r.RemoteAddr},
		// The error is the message the caller got, which is safe to show.
		Outcome: &audit.Outcome{Status: status, Error: errMsg},
	}
	if by.Name != "" {
		e.Actor = by.actor()
	}
	if rerr := a.svc.cfg.Audit.Record(context.WithoutCancel(r.Context()), e); rerr != nil {
		a.log.Error("record an admin API call", "operation", pattern, "err", rerr)
	}
}

// authenticate accepts a bearer token (authenticateBearer) or an agent's
// session credential (Basic, as in its proxy URL).
func (a *API) authenticate(r *http.Request) (Principal, error) {
	h := r.Header.Get("Authorization")
	if token, ok := strings.CutPrefix(h, "Bearer "); ok {
		return a.authenticateBearer(r.Context(), secret.Value(strings.TrimSpace(token)))
	}
	if h == "" {
		return Principal{}, fmt.Errorf("%w: send a bearer token or a session credential", ErrUnauthenticated)
	}
	id, sec, err := ParseSessionCredential(h)
	if err != nil {
		return Principal{}, fmt.Errorf("%w: %w", ErrUnauthenticated, err)
	}
	s, err := a.svc.AuthenticateSession(r.Context(), id, sec)
	if err != nil {
		return Principal{}, err
	}
	return Principal{Name: s.User, Groups: s.Groups, Session: s.ID, Agent: s.Agent, AuthMethod: AuthSession}, nil
}

// authenticateBearer tries a static token first (a digest lookup, no
// parsing), then the verifier of the issuer the token claims, if it is a
// JWT: the unverified claim only picks whom to ask. A token none accepts
// is ErrUnauthenticated.
func (a *API) authenticateBearer(ctx context.Context, token secret.Value) (Principal, error) {
	if p, ok := a.svc.cfg.Identities.Authenticate(token); ok {
		return p, nil
	}
	iss, ok := UnverifiedIssuer(token.Reveal())
	if !ok {
		return Principal{}, fmt.Errorf("%w: unknown token", ErrUnauthenticated)
	}
	v := a.cfg.Issuers[iss]
	if v == nil {
		a.log.Debug("bearer token from an issuer that is not configured", "issuer", quoteShort(iss))
		return Principal{}, fmt.Errorf("%w: unknown token: not a static token, and not from a configured OIDC issuer or cluster", ErrUnauthenticated)
	}
	return v.VerifyToken(ctx, token)
}

// apiError is the JSON body of every error answer.
type apiError struct {
	Error string `json:"error"`
}

// writeError maps err to a status and a message safe to show: the
// service's own messages for the errors it defines, a generic one otherwise.
func (a *API) writeError(w http.ResponseWriter, r *http.Request, err error) (int, string) {
	status, msg := a.errorAnswer(r, err)
	if status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="jitproxy"`)
	}
	writeJSON(w, status, apiError{Error: msg})
	return status, msg
}

// errorAnswer is the status and the message safe to show for err; errors
// the service does not define are logged.
func (a *API) errorAnswer(r *http.Request, err error) (int, string) {
	status := http.StatusInternalServerError
	msg := "internal error; see the jitproxy log"
	switch {
	case errors.Is(err, ErrUnauthenticated):
		status, msg = http.StatusUnauthorized, err.Error()
	case errors.Is(err, ErrForbidden):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, ErrNotFound):
		status, msg = http.StatusNotFound, err.Error()
	case errors.Is(err, ErrInvalid):
		status, msg = http.StatusBadRequest, err.Error()
	case errors.Is(err, ErrConflict):
		status, msg = http.StatusConflict, err.Error()
	case errors.Is(err, ErrLocked):
		status, msg = http.StatusForbidden, err.Error()
	case errors.Is(err, ErrAuthUnavailable):
		// The verifier logged the cause; its message is safe to show.
		status, msg = http.StatusServiceUnavailable, err.Error()
	case errors.Is(err, ErrUnavailable):
		status, msg = http.StatusServiceUnavailable, "jitproxy's state store is unavailable; nothing was changed; try again"
		a.log.Error("admin api", "method", r.Method, "path", r.URL.Path, "err", err)
	default:
		a.log.Error("admin api", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	return status, msg
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(body)
}

// decode reads a JSON body of at most 64 KiB; unknown fields are errors.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(http.MaxBytesReader(nil, r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: request body: %v", ErrInvalid, err)
	}
	return nil
}

// parseDuration parses an optional duration such as "30m".
func parseDuration(field, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: %s %q is not a duration such as 30m or 2h", ErrInvalid, field, s)
	}
	return d, nil
}

func (a *API) caCert(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/x-pem-file")
	w.Write(a.cfg.CACertPEM)
}

// SessionAnswer is the answer to a session creation: all an agent needs.
type SessionAnswer struct {
	Session *Session `json:"session"`
	// ProxyURL carries the session credential; it is the agent's HTTPS_PROXY.
	ProxyURL  string       `json:"proxy_url"`
	CACertPEM string       `json:"ca_cert_pem"`
	Targets   []TargetInfo `json:"targets"`
}

func (a *API) createSession(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	var req struct {
		Agent  string   `json:"agent"`
		User   string   `json:"user"`
		Groups []string `json:"groups"`
		TTL    string   `json:"ttl"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	ttl, err := parseDuration("ttl", req.TTL)
	if err != nil {
		return 0, nil, err
	}
	s, sec, err := a.svc.CreateSession(ctx, by, SessionRequest{Agent: req.Agent, User: req.User, Groups: req.Groups, TTL: ttl})
	if err != nil {
		return 0, nil, err
	}
	u := *a.cfg.ProxyURL
	u.User = url.UserPassword(s.ID, sec.Reveal())
	return http.StatusCreated, SessionAnswer{Session: s, ProxyURL: u.String(), CACertPEM: string(a.cfg.CACertPEM), Targets: a.cfg.Targets}, nil
}

func (a *API) endSession(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	if err := a.svc.EndSession(ctx, by, r.PathValue("id")); err != nil {
		return 0, nil, err
	}
	return http.StatusOK, struct{}{}, nil
}

// PolicyView is the API's description of an access policy.
type PolicyView struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Target      string   `json:"target"`
	Kind        string   `json:"kind"` // of the target: kubernetes or aws
	Namespaces  []string `json:"namespaces,omitempty"`
	ClusterWide bool     `json:"cluster_wide,omitempty"` // a Kubernetes grant with no namespace
	// DefaultDuration and MaxDuration are the caller's own: a policy may
	// give some requesters a maximum of their own.
	DefaultDuration string `json:"default_duration"`
	MaxDuration     string `json:"max_duration"`
	Approvals       int    `json:"approvals_required"`
}

func (a *API) listPolicies(_ context.Context, by Principal, _ *http.Request) (int, any, error) {
	out := []PolicyView{}
	for _, p := range a.svc.policies().All() {
		if p.Subjects.Matches(by.Name, by.Groups) || a.svc.isAdmin(by) {
			out = append(out, PolicyView{
				Name: p.Name, Description: p.Description, Target: p.Target, Kind: p.Kind, Namespaces: p.Namespaces,
				ClusterWide: p.ClusterWide && p.Kind != access.KindAWS, DefaultDuration: p.Duration.defaultFor(by.Name, by.Groups).String(),
				MaxDuration: p.Duration.maxFor(by.Name, by.Groups).String(), Approvals: p.Approval.Required,
			})
		}
	}
	return http.StatusOK, out, nil
}

func (a *API) requestGrant(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	var req struct {
		Policy    string `json:"policy"`
		Namespace string `json:"namespace"`
		Duration  string `json:"duration"`
		Reason    string `json:"reason"`
		Session   string `json:"session"`
		DryRun    bool   `json:"dry_run"`
		Learn     bool   `json:"learn"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	d, err := parseDuration("duration", req.Duration)
	if err != nil {
		return 0, nil, err
	}
	g, err := a.svc.RequestGrant(ctx, by, GrantRequest{
		Policy: req.Policy, Namespace: req.Namespace, Duration: d, Reason: req.Reason, Session: req.Session,
		DryRun: req.DryRun, Learn: req.Learn,
	})
	if err != nil {
		return 0, nil, err
	}
	if req.DryRun {
		return http.StatusOK, g, nil
	}
	return http.StatusCreated, g, nil
}

func (a *API) listGrants(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	q := r.URL.Query()
	gs, err := a.svc.List(ctx, by, ListFilter{State: State(strings.ToUpper(q.Get("state"))), User: q.Get("user")})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, gs, nil
}

func (a *API) getGrant(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	g, err := a.svc.Get(ctx, by, r.PathValue("id"))
	return http.StatusOK, g, err
}

// ProfileReader reads the recorded profile of a learning grant, as JSON
// the API answers as it is. A grant with no recording is an error
// wrapping ErrNotFound.
type ProfileReader interface {
	ReadProfile(ctx context.Context, grantID string) (any, error)
}

// ProfileAnswer is the answer of GET /v1/profiles/{id}: the learning grant
// and what was recorded under it.
type ProfileAnswer struct {
	Grant   *Grant `json:"grant"`
	Profile any    `json:"profile"`
}

// getProfile answers the profile of a learning grant to whoever may see
// the grant: its user, its approvers, admins.
func (a *API) getProfile(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	id := r.PathValue("id")
	g, err := a.svc.Get(ctx, by, id)
	if err != nil {
		return 0, nil, err
	}
	if !g.Learning || a.cfg.Profiles == nil {
		return 0, nil, fmt.Errorf("grant %s is not a learning grant: %w", id, ErrNotFound)
	}
	p, err := a.cfg.Profiles.ReadProfile(ctx, id)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, ProfileAnswer{Grant: g, Profile: p}, nil
}

// decision is the body of approve, deny and revoke.
type decisionBody struct {
	Comment string `json:"comment"`
}

func (a *API) decide(r *http.Request) (string, error) {
	var body decisionBody
	if r.ContentLength == 0 {
		return "", nil
	}
	err := decode(r, &body)
	return body.Comment, err
}

func (a *API) approve(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	c, err := a.decide(r)
	if err != nil {
		return 0, nil, err
	}
	g, err := a.svc.Approve(ctx, by, r.PathValue("id"), c)
	return http.StatusOK, g, err
}

func (a *API) deny(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	c, err := a.decide(r)
	if err != nil {
		return 0, nil, err
	}
	g, err := a.svc.Deny(ctx, by, r.PathValue("id"), c)
	return http.StatusOK, g, err
}

func (a *API) revoke(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	c, err := a.decide(r)
	if err != nil {
		return 0, nil, err
	}
	g, err := a.svc.Revoke(ctx, by, r.PathValue("id"), c)
	return http.StatusOK, g, err
}

// createLock locks a user, an agent, a session or an access policy, for
// admins: {"user"|"agent"|"session"|"policy": NAME, "ttl": "1h" (optional),
// "reason": TEXT}.
func (a *API) createLock(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	var req struct {
		User    string `json:"user"`
		Agent   string `json:"agent"`
		Session string `json:"session"`
		Policy  string `json:"policy"`
		TTL     string `json:"ttl"`
		Reason  string `json:"reason"`
	}
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	ttl, err := parseDuration("ttl", req.TTL)
	if err != nil {
		return 0, nil, err
	}
	l, err := a.svc.CreateLock(ctx, by, LockRequest{User: req.User, Agent: req.Agent, Session: req.Session, Policy: req.Policy, TTL: ttl, Reason: req.Reason})
	if err != nil {
		return 0, nil, err
	}
	return http.StatusCreated, l, nil
}

func (a *API) listLocks(ctx context.Context, by Principal, _ *http.Request) (int, any, error) {
	locks, err := a.svc.ListLocks(ctx, by)
	return http.StatusOK, locks, err
}

// removeLock lifts a lock, for admins; ?reason= says why.
func (a *API) removeLock(ctx context.Context, by Principal, r *http.Request) (int, any, error) {
	l, err := a.svc.RemoveLock(ctx, by, r.PathValue("id"), r.URL.Query().Get("reason"))
	return http.StatusOK, l, err
}
