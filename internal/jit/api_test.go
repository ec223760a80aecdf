package jit

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

func newAPI(t *testing.T) (*fixture, *httptest.Server) {
	t.Helper()
	f := newFixture(t)
	ids, err := NewIdentities([]Identity{
		{Name: "runner", Groups: []string{"jitproxy:runners"}, Token: "runner-token-0123456789"},
		{Name: "alice", Groups: []string{"developers"}, Token: "alice-token-0123456789"},
		{Name: "bob", Groups: []string{"sre"}, Token: "bob-token-0123456789abc"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Identities = ids
	api := NewAPI(f.svc, APIConfig{
		ProxyURL: &url.URL{Scheme: "http", Host: "127.0.0.1:8080"}, CACertPEM: []byte("CA PEM"),
		Targets: []TargetInfo{{Name: "demo", Kind: "kubernetes", Server: "https://kubernetes.demo"}},
	})
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	return f, srv
}

func call(t *testing.T, srv *httptest.Server, method, path, auth, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestAPIErrors(t *testing.T) {
	_, srv := newAPI(t)
	tests := []struct {
		name       string
		method     string
		path       string
		auth       string
		body       string
		wantStatus int
		wantError  string
	}{
		{name: "no credential", method: "GET", path: "/v1/grants", wantStatus: 401, wantError: "send a bearer token or a session credential"},
		{name: "unknown token", method: "GET", path: "/v1/grants", auth: "Bearer nope-nope-nope-nope", wantStatus: 401, wantError: "unknown token"},
		{name: "malformed basic", method: "GET", path: "/v1/grants", auth: "Basic !!!", wantStatus: 401, wantError: "malformed session credential"},
		{name: "unknown field", method: "POST", path: "/v1/grants", auth: "Bearer alice-token-0123456789", body: `{"policy":"reader","namespace":"demo","reason":"r","sudo":true}`, wantStatus: 400, wantError: `unknown field "sudo"`},
		{name: "bad duration", method: "POST", path: "/v1/grants", auth: "Bearer alice-token-0123456789", body: `{"policy":"reader","namespace":"demo","reason":"r","duration":"forever"}`, wantStatus: 400, wantError: `duration "forever" is not a duration`},
		{name: "over max", method: "POST", path: "/v1/grants", auth: "Bearer alice-token-0123456789", body: `{"policy":"reader","namespace":"demo","reason":"r","duration":"3h"}`, wantStatus: 400, wantError: "exceeds the maximum"},
		{
			name: "hostile session user", method: "POST", path: "/v1/sessions", auth: "Bearer runner-token-0123456789",
			body:       `{"agent":"claude","user":"alice\u001b]0;pwned\u0007","groups":["developers"]}`,
			wantStatus: 400, wantError: `invalid request: user holds the control or non-printable character '\x1b' at byte 5`,
		},
		{
			name: "hostile grant reason", method: "POST", path: "/v1/grants", auth: "Bearer alice-token-0123456789",
			body:       `{"policy":"reader","namespace":"demo","reason":"look\n\u001b[31mAPPROVED"}`,
			wantStatus: 400, wantError: `invalid request: reason holds the control or non-printable character '\n' at byte 4`,
		},
		{
			name: "hostile grant namespace", method: "POST", path: "/v1/grants", auth: "Bearer alice-token-0123456789",
			body:       `{"policy":"editor","namespace":"../kube-system","reason":"r"}`,
			wantStatus: 400, wantError: `invalid request: namespace "../kube-system" is not a DNS-1123 label`,
		},
		{name: "not a runner", method: "POST", path: "/v1/sessions", auth: "Bearer alice-token-0123456789", body: `{"agent":"a","user":"alice"}`, wantStatus: 403, wantError: "only runners"},
		{name: "unknown grant", method: "GET", path: "/v1/grants/g-nope", auth: "Bearer alice-token-0123456789", wantStatus: 404, wantError: "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := call(t, srv, tt.method, tt.path, tt.auth, tt.body)
			msg, _ := out["error"].(string)
			if status != tt.wantStatus || !strings.Contains(msg, tt.wantError) {
				t.Errorf("%s %s = %d %v, want %d %q", tt.method, tt.path, status, out, tt.wantStatus, tt.wantError)
			}
		})
	}
}

func TestAPISessionAndAgentRequest(t *testing.T) {
	f, srv := newAPI(t)
	status, out := call(t, srv, "POST", "/v1/sessions", "Bearer runner-token-0123456789", `{"agent":"claude","user":"alice","groups":["developers"],"ttl":"1h"}`)
	if status != 201 {
		t.Fatalf("create session: %d %v", status, out)
	}
	u, err := url.Parse(out["proxy_url"].(string))
	if err != nil || u.User == nil || u.Host != "127.0.0.1:8080" {
		t.Fatalf("proxy_url %q", out["proxy_url"])
	}
	pw, _ := u.User.Password()
	if _, err := f.svc.AuthenticateSession(t.Context(), u.User.Username(), secret.Value(pw)); err != nil {
		t.Fatalf("the proxy URL's credential does not authenticate: %v", err)
	}
	if diff := cmp.Diff([]any{map[string]any{"name": "demo", "kind": "kubernetes", "server": "https://kubernetes.demo"}}, out["targets"]); diff != "" {
		t.Errorf("targets (-want +got):\n%s", diff)
	}
	// The agent requests a grant for itself with its session credential.
	req, _ := http.NewRequest("POST", srv.URL+"/v1/grants", strings.NewReader(`{"policy":"reader","namespace":"demo","reason":"look"}`))
	req.SetBasicAuth(u.User.Username(), pw)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var g Grant
	json.NewDecoder(resp.Body).Decode(&g)
	resp.Body.Close()
	if resp.StatusCode != 201 || g.Session != u.User.Username() || g.User != "alice" || g.RequestedBy.Agent != "claude" {
		t.Errorf("agent's grant: %d %+v", resp.StatusCode, g)
	}
	// An agent cannot approve, even on behalf of an approver.
	pending, _ := f.svc.RequestGrant(t.Context(), alice, GrantRequest{Policy: "editor", Namespace: "demo", Reason: "r"})
	req, _ = http.NewRequest("POST", srv.URL+"/v1/grants/"+pending.ID+"/approve", nil)
	req.SetBasicAuth(u.User.Username(), pw)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("agent approval = %d, want 403", resp.StatusCode)
	}
	status, out = call(t, srv, "POST", "/v1/grants/"+pending.ID+"/approve", "Bearer bob-token-0123456789abc", `{"comment":"fine"}`)
	if status != 200 || out["state"] != "PENDING" || len(out["approvals"].([]any)) != 1 {
		t.Errorf("approve: %d %v", status, out)
	}
}

// TestAPIWhenRedisIsDown: a store that cannot be reached is a 503 that
// says to try again, not an internal error.
func TestAPIWhenRedisIsDown(t *testing.T) {
	f, srv := newAPI(t)
	f.mr.Close()
	for _, tt := range []struct{ method, path, body string }{
		{"POST", "/v1/grants", `{"policy":"reader","namespace":"demo","reason":"r"}`},
		{"GET", "/v1/grants", ""},
		{"POST", "/v1/sessions", `{"agent":"claude","user":"alice"}`},
	} {
		auth := "Bearer alice-token-0123456789"
		if tt.path == "/v1/sessions" {
			auth = "Bearer runner-token-0123456789"
		}
		status, out := call(t, srv, tt.method, tt.path, auth, tt.body)
		if msg, _ := out["error"].(string); status != http.StatusServiceUnavailable || !strings.Contains(msg, "state store is unavailable") {
			t.Errorf("%s %s = %d %v, want 503", tt.method, tt.path, status, out)
		}
	}
}

// TestAdminCallsAreAudited: every admin API call is an event: who, which
// operation on which path, from where, and the outcome (the message the
// caller got, never a token).
func TestAdminCallsAreAudited(t *testing.T) {
	f, srv := newAPI(t)
	call(t, srv, "GET", "/v1/grants", "Bearer alice-token-0123456789", "")
	call(t, srv, "POST", "/v1/grants/g-nothere/approve", "Bearer bob-token-0123456789abc", "{}")
	call(t, srv, "GET", "/v1/policies", "Bearer not-a-token-at-all", "")
	var got []audit.Event
	for _, e := range f.audit.Events() {
		if e.Type == audit.TypeAdminRequest {
			e.Admin.SourceAddr = ""
			got = append(got, e)
		}
	}
	want := []audit.Event{
		{Type: audit.TypeAdminRequest, Actor: &audit.Actor{Name: "alice", Groups: []string{"developers"}, AuthMethod: AuthToken, Identity: "token:alice"},
			Admin: &audit.AdminCall{Operation: "GET /v1/grants", Path: "/v1/grants"}, Outcome: &audit.Outcome{Status: 200}},
		{Type: audit.TypeAdminRequest, Actor: &audit.Actor{Name: "bob", Groups: []string{"sre"}, AuthMethod: AuthToken, Identity: "token:bob"},
			Admin:   &audit.AdminCall{Operation: "POST /v1/grants/{id}/approve", Path: "/v1/grants/g-nothere/approve"},
			Outcome: &audit.Outcome{Status: 404, Error: "grant g-nothere: not found"}},
		{Type: audit.TypeAdminRequest,
			Admin:   &audit.AdminCall{Operation: "GET /v1/policies", Path: "/v1/policies"},
			Outcome: &audit.Outcome{Status: 401, Error: "unauthenticated: unknown token"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("admin events (-want +got):\n%s", diff)
	}
	for _, e := range f.audit.Events() {
		b, _ := json.Marshal(e)
		if strings.Contains(string(b), "not-a-token-at-all") || strings.Contains(string(b), "bob-token") {
			t.Errorf("an event holds a token: %s", b)
		}
	}
}

func TestAuditSinksAreForAdmins(t *testing.T) {
	f, srv := newAPI(t)
	_ = f
	if status, _ := call(t, srv, "GET", "/v1/audit/sinks", "Bearer alice-token-0123456789", ""); status != http.StatusForbidden {
		t.Errorf("a developer reading the audit counters: %d, want 403", status)
	}
}

// TestAPILocks: admins lock, list and remove through the API; a request
// for a grant a lock holds back is answered 403 with the lock's reason;
// others cannot lock.
func TestAPILocks(t *testing.T) {
	f, srv := newAPI(t)
	ids, err := NewIdentities([]Identity{
		{Name: "alice", Groups: []string{"developers"}, Token: "alice-token-0123456789"},
		{Name: "root", Groups: []string{"jitproxy:admins"}, Token: "root-token-0123456789ab"},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Identities = ids
	const root, alicetok = "Bearer root-token-0123456789ab", "Bearer alice-token-0123456789"
	if status, out := call(t, srv, "POST", "/v1/locks", alicetok, `{"user":"bob","reason":"r"}`); status != 403 {
		t.Errorf("alice locking: %d %v", status, out)
	}
	status, lock := call(t, srv, "POST", "/v1/locks", root, `{"user":"alice","ttl":"1h","reason":"incident 7"}`)
	if status != 201 || lock["id"] == "" || lock["expires_at"] == nil {
		t.Fatalf("lock: %d %v", status, lock)
	}
	status, out := call(t, srv, "POST", "/v1/grants", alicetok, `{"policy":"reader","namespace":"demo","reason":"r"}`)
	if msg, _ := out["error"].(string); status != 403 || !strings.Contains(msg, "user alice is locked by an administrator") || !strings.Contains(msg, "incident 7") {
		t.Errorf("a locked user's grant request: %d %v", status, out)
	}
	id, _ := lock["id"].(string)
	if status, out := call(t, srv, "DELETE", "/v1/locks/"+id+"?reason=contained", root, ""); status != 200 {
		t.Errorf("remove: %d %v", status, out)
	}
	if status, out := call(t, srv, "POST", "/v1/grants", alicetok, `{"policy":"reader","namespace":"demo","reason":"r"}`); status != 201 {
		t.Errorf("after the lock was removed: %d %v", status, out)
	}
}
