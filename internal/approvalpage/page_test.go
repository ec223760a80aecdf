package approvalpage

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

const testPolicies = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: editor}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: ["*"]
  permissions: [{verbs: ["*"], apiGroups: [""], resources: [pods]}]
  duration: {default: 30m, max: 4h}
  approval: {required: 1, approvers: {groups: [sre]}, timeout: 10m}
  credential: {provider: tokenrequest}
`

var (
	alice = jit.Principal{Name: "alice@example.com", Groups: []string{"developers"}}
	bob   = map[string]any{"sub": "b", "email": "bob@example.com", "email_verified": true, "groups": []string{"sre"}}
	carol = map[string]any{"sub": "c", "email": "carol@example.com", "groups": []string{"sre", "developers"}}
)

// env is a page on an httptest server, a fake issuer, a jit.Service on
// miniredis, and a browser-like client (cookie jar, following redirects).
type env struct {
	svc    *jit.Service
	audit  *audittest.Log
	issuer *fakeIssuer
	srv    *httptest.Server
	client *http.Client
}

func newEnv(t *testing.T, tls bool) *env {
	t.Helper()
	mr := miniredis.RunT(t)
	rdb := redis.NewClient(&redis.Options{Addr: mr.Addr()})
	t.Cleanup(func() { rdb.Close() })
	ps, err := jit.ParsePolicies("test.yaml", []byte(testPolicies))
	if err != nil {
		t.Fatal(err)
	}
	set, err := jit.NewPolicies(ps)
	if err != nil {
		t.Fatal(err)
	}
	ids, _ := jit.NewIdentities(nil, nil)
	e := &env{audit: &audittest.Log{}, issuer: newFakeIssuer(t)}
	e.svc, err = jit.New(jit.Config{Redis: rdb, Policies: set, Identities: ids, Audit: e.audit, Targets: []string{"demo"}})
	if err != nil {
		t.Fatal(err)
	}
	var page http.Handler
	e.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { page.ServeHTTP(w, r) }))
	if tls {
		e.srv.StartTLS()
	} else {
		e.srv.Start()
	}
	t.Cleanup(e.srv.Close)
	iss := NewIssuer(e.issuer.URL, nil)
	auth, err := NewClaimsAuthenticator(ClaimsConfig{Issuer: iss, ClientID: testClientID})
	if err != nil {
		t.Fatal(err)
	}
	redirect, _ := url.Parse(e.srv.URL + CallbackPath)
	page, err = New(Config{
		Grants: e.svc, Authenticator: auth, Audit: e.audit, Redis: rdb, Issuer: iss, ClientID: testClientID,
		ClientSecret: secret.Value(testClientSecret), RedirectURL: redirect,
	})
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	e.client = e.srv.Client()
	e.client.Jar = jar
	return e
}

// get fetches path on the page and returns the final status and body.
func (e *env) get(t *testing.T, path string) (*http.Response, string) {
	t.Helper()
	resp, err := e.client.Get(e.srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// signIn signs claims in through the whole code flow and returns the page.
func (e *env) signIn(t *testing.T, claims map[string]any) string {
	t.Helper()
	e.issuer.signIn(claims)
	resp, body := e.get(t, "/ui/")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "Signed in as") {
		t.Fatalf("sign-in ended with %s:\n%s", resp.Status, body)
	}
	return body
}

var csrfPattern = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrf(t *testing.T, body string) string {
	t.Helper()
	m := csrfPattern.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token on the page:\n%s", body)
	}
	return m[1]
}

// post submits a form to path with extra headers and returns the status
// and body of the answer (redirects not followed).
func (e *env) post(t *testing.T, path string, form url.Values, header http.Header) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range header {
		req.Header[k] = v
	}
	c := *e.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func (e *env) request(t *testing.T, by jit.Principal, reason string) *jit.Grant {
	t.Helper()
	g, err := e.svc.RequestGrant(context.Background(), by, jit.GrantRequest{Policy: "editor", Namespace: "demo", Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (e *env) state(t *testing.T, id string) jit.State {
	t.Helper()
	g, err := e.svc.Get(context.Background(), jit.Principal{Name: "bob@example.com", Groups: []string{"sre"}}, id)
	if err != nil {
		t.Fatal(err)
	}
	return g.State
}

func TestSignInApproveThroughThePage(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, alice, "debug the web pods")
	body := e.signIn(t, bob)
	for _, want := range []string{"bob@example.com", g.ID, "alice@example.com", "debug the web pods", "editor", "30m0s", "namespace demo"} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}
	status, _ := e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {csrf(t, body)}, "comment": {"ok, go ahead"}}, nil)
	if status != http.StatusSeeOther {
		t.Fatalf("approve: %d, want 303", status)
	}
	if got := e.state(t, g.ID); got != jit.StateActive {
		t.Errorf("grant is %s after approval, want ACTIVE", got)
	}
	var approved []audit.Event
	for _, ev := range e.audit.Events() {
		if ev.Type == audit.TypeGrantApproved {
			approved = append(approved, ev)
		}
	}
	if len(approved) != 1 || approved[0].Actor.Name != "bob@example.com" || !cmp.Equal(approved[0].Actor.Groups, []string{"sre"}) {
		t.Errorf("grant.approved events: %+v", approved)
	}
	_, body = e.get(t, "/ui/")
	if !strings.Contains(body, "approved by bob@example.com") || !strings.Contains(body, "ok, go ahead") || !strings.Contains(body, "Nothing is waiting for you") {
		t.Errorf("recent decisions lack the approval:\n%s", body)
	}
}

func TestDenyThroughThePage(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, alice, "why not")
	body := e.signIn(t, bob)
	if status, _ := e.post(t, "/ui/grants/"+g.ID+"/deny", url.Values{"csrf": {csrf(t, body)}, "comment": {"not today"}}, nil); status != http.StatusSeeOther {
		t.Fatalf("deny: %d, want 303", status)
	}
	if got := e.state(t, g.ID); got != jit.StateDenied {
		t.Errorf("grant is %s after denial, want DENIED", got)
	}
}

func TestSecurityHeaders(t *testing.T) {
	e := newEnv(t, false)
	e.signIn(t, bob)
	want := map[string]string{
		"Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
		"X-Content-Type-Options":  "nosniff",
		"Referrer-Policy":         "no-referrer",
		"X-Frame-Options":         "DENY",
		"Cache-Control":           "no-store",
	}
	for _, path := range []string{"/ui/", "/ui/callback", "/ui/nothing"} {
		resp, _ := e.get(t, path)
		got := map[string]string{}
		for k := range want {
			got[k] = resp.Header.Get(k)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("GET %s headers (-want +got):\n%s", path, diff)
		}
	}
	if resp, _ := e.get(t, "/ui/"); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Errorf("page Content-Type %q", resp.Header.Get("Content-Type"))
	}
}

func TestCookieFlags(t *testing.T) {
	tests := []struct {
		name   string
		tls    bool
		prefix string
	}{
		{name: "http on loopback", tls: false, prefix: ""},
		{name: "https", tls: true, prefix: "__Host-"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.tls)
			e.issuer.signIn(bob)
			var setCookies []*http.Cookie
			e.client.CheckRedirect = func(req *http.Request, via []*http.Request) error {
				setCookies = append(setCookies, req.Response.Cookies()...)
				return nil
			}
			e.get(t, "/ui/")
			type flags struct {
				Name, Path         string
				HttpOnly, Secure   bool
				SameSite           http.SameSite
				Cleared, HasMaxAge bool
			}
			var got []flags
			for _, c := range setCookies {
				got = append(got, flags{Name: c.Name, Path: c.Path, HttpOnly: c.HttpOnly, Secure: c.Secure, SameSite: c.SameSite, Cleared: c.MaxAge < 0, HasMaxAge: c.MaxAge > 0})
			}
			want := []flags{
				{Name: tt.prefix + "jitproxy-login", Path: "/", HttpOnly: true, Secure: tt.tls, SameSite: http.SameSiteLaxMode, HasMaxAge: true},
				{Name: tt.prefix + "jitproxy-login", Path: "/", HttpOnly: true, Secure: tt.tls, SameSite: http.SameSiteLaxMode, Cleared: true},
				{Name: tt.prefix + "jitproxy-page", Path: "/", HttpOnly: true, Secure: tt.tls, SameSite: http.SameSiteLaxMode, HasMaxAge: true},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cookies set during sign-in (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFormsRefused(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, alice, "r")
	token := csrf(t, e.signIn(t, bob))
	tests := []struct {
		name   string
		form   url.Values
		header http.Header
		want   int
	}{
		{name: "no CSRF token", form: url.Values{"comment": {"x"}}, want: http.StatusForbidden},
		{name: "wrong CSRF token", form: url.Values{"csrf": {"not-" + token}}, want: http.StatusForbidden},
		{name: "cross-site by Sec-Fetch-Site", form: url.Values{"csrf": {token}}, header: http.Header{"Sec-Fetch-Site": {"cross-site"}}, want: http.StatusForbidden},
		{name: "cross-origin by Origin", form: url.Values{"csrf": {token}}, header: http.Header{"Origin": {"https://evil.example"}}, want: http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, body := e.post(t, "/ui/grants/"+g.ID+"/approve", tt.form, tt.header); status != tt.want {
				t.Errorf("status %d, want %d:\n%s", status, tt.want, body)
			}
		})
	}
	if got := e.state(t, g.ID); got != jit.StatePending {
		t.Errorf("grant is %s after refused posts, want PENDING", got)
	}
	if status, _ := e.post(t, "/ui/logout", url.Values{}, nil); status != http.StatusForbidden {
		t.Errorf("logout without a token: %d, want 403", status)
	}
}

func TestHostileTextIsEscaped(t *testing.T) {
	e := newEnv(t, false)
	const hostile = `<script>alert("x")</script><img src=x onerror=alert(1)>`
	g := e.request(t, alice, hostile)
	body := e.signIn(t, bob)
	e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {csrf(t, body)}, "comment": {hostile}}, nil)
	_, body = e.get(t, "/ui/")
	if strings.Contains(body, "<script") || strings.Contains(body, "<img") {
		t.Errorf("hostile text reached the page unescaped:\n%s", body)
	}
	if !strings.Contains(body, "&lt;script&gt;") {
		t.Errorf("escaped text missing:\n%s", body)
	}
}

func TestSelfApprovalRefused(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, jit.Principal{Name: "carol@example.com", Groups: []string{"developers", "sre"}}, "mine")
	body := e.signIn(t, carol)
	if strings.Contains(body, "request-"+g.ID) {
		t.Errorf("carol's own request is listed for her to approve:\n%s", body)
	}
	status, body := e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {csrf(t, body)}}, nil)
	if status != http.StatusForbidden || !strings.Contains(body, "cannot approve or deny their own request") {
		t.Errorf("self-approval: %d\n%s", status, body)
	}
	if got := e.state(t, g.ID); got != jit.StatePending {
		t.Errorf("grant is %s, want PENDING", got)
	}
}

func TestUnauthenticated(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, alice, "r")
	c := *e.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/ui/login" {
		t.Errorf("GET /ui/ without a session: %s to %q, want 303 to /ui/login", resp.Status, resp.Header.Get("Location"))
	}
	if status, _ := e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {"x"}}, nil); status != http.StatusUnauthorized {
		t.Errorf("approve without a session: %d, want 401", status)
	}
}

func TestCallbackRefusals(t *testing.T) {
	tests := []struct {
		name    string
		tamper  func(e *env)
		rewrite func(callback string) string
		want    string
	}{
		{name: "the provider's error, repeated only as a code", rewrite: func(cb string) string { return cb + "&error=access_denied" }, want: "the identity provider answered access_denied"},
		{name: "the provider's error, not repeated otherwise", rewrite: func(cb string) string { return cb + "&error=%3Cb%3Eforged%20message" }, want: "the identity provider answered an error"},
		{name: "state mismatch", tamper: func(e *env) { e.issuer.badState = true }, want: "the state does not match"},
		{name: "nonce mismatch", tamper: func(e *env) { e.issuer.badNonce = true }, want: "nonce does not match"},
		{name: "unverified email", tamper: func(e *env) {
			e.issuer.signIn(map[string]any{"sub": "m", "email": "mallory@example.com", "email_verified": false})
		}, want: "does not accept this identity"},
		{name: "no login cookie", tamper: func(e *env) { e.client.Jar, _ = cookiejar.New(nil) }, want: "no sign-in is under way"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, false)
			e.issuer.signIn(bob)
			if tt.tamper != nil {
				tt.tamper(e)
			}
			var cb string
			e.client.CheckRedirect = func(req *http.Request, _ []*http.Request) error {
				if req.URL.Path == CallbackPath {
					cb = req.URL.String()
					return http.ErrUseLastResponse
				}
				return nil
			}
			e.get(t, "/ui/login")
			if cb == "" {
				t.Fatal("no redirect to the callback")
			}
			if tt.name == "no login cookie" {
				tt.tamper(e)
			}
			e.client.CheckRedirect = nil
			if tt.rewrite != nil {
				cb = tt.rewrite(cb)
			}
			resp, body := e.get(t, strings.TrimPrefix(cb, e.srv.URL))
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(body, tt.want) {
				t.Errorf("callback: %s, want 401 with %q:\n%s", resp.Status, tt.want, body)
			}
			if strings.Contains(body, "Signed in as") {
				t.Error("signed in after a refused callback")
			}
			calls := e.calls()
			if len(calls) != 1 || calls[0].Actor != nil || calls[0].Admin.Operation != "GET "+CallbackPath ||
				calls[0].Outcome.Status != http.StatusUnauthorized || !strings.Contains(calls[0].Outcome.Error, tt.want) {
				t.Errorf("recorded calls: %s", describeCalls(calls))
			}
		})
	}
}

// TestCallsAudited: a sign-in, each form posted and a sign-out are
// admin.request events with the person as actor and the outcome; a
// refused post has the refusal's message. Page views are not recorded,
// and neither the code nor the state of a sign-in is.
func TestCallsAudited(t *testing.T) {
	e := newEnv(t, false)
	g := e.request(t, alice, "r")
	mine := e.request(t, jit.Principal{Name: "bob@example.com", Groups: []string{"developers"}}, "my own")
	body := e.signIn(t, bob)
	token := csrf(t, body)
	e.get(t, "/ui/")
	e.post(t, "/ui/grants/"+mine.ID+"/approve", url.Values{"csrf": {token}}, nil)
	e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {"wrong"}}, nil)
	e.post(t, "/ui/grants/"+g.ID+"/approve", url.Values{"csrf": {token}, "comment": {"ok"}}, nil)
	e.post(t, "/ui/logout", url.Values{"csrf": {token}}, nil)

	type row struct {
		Actor, Operation string
		Status           int
		Error            string
	}
	var got []row
	for _, c := range e.calls() {
		r := row{Operation: c.Admin.Operation, Status: c.Outcome.Status, Error: c.Outcome.Error}
		if c.Actor != nil {
			r.Actor = c.Actor.Name
		}
		if strings.ContainsAny(c.Admin.Path, "?&=") {
			t.Errorf("a recorded path holds a query: %q", c.Admin.Path)
		}
		got = append(got, r)
	}
	want := []row{
		{Actor: "bob@example.com", Operation: "GET /ui/callback", Status: http.StatusSeeOther},
		{Actor: "bob@example.com", Operation: "POST /ui/grants/{id}/approve", Status: http.StatusForbidden, Error: "forbidden: bob@example.com cannot approve or deny their own request"},
		{Actor: "bob@example.com", Operation: "POST /ui/grants/{id}/approve", Status: http.StatusForbidden, Error: "Refused: the form's token does not match your session. Reload the page and try again."},
		{Actor: "bob@example.com", Operation: "POST /ui/grants/{id}/approve", Status: http.StatusSeeOther},
		{Actor: "bob@example.com", Operation: "POST /ui/logout", Status: http.StatusOK},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("recorded calls (-want +got):\n%s", diff)
	}
}

// calls returns the admin.request events recorded so far.
func (e *env) calls() []audit.Event {
	var out []audit.Event
	for _, ev := range e.audit.Events() {
		if ev.Type == audit.TypeAdminRequest {
			out = append(out, ev)
		}
	}
	return out
}

func describeCalls(calls []audit.Event) string {
	var b strings.Builder
	for _, c := range calls {
		fmt.Fprintf(&b, "\n  actor %+v %s %s: %+v", c.Actor, c.Admin.Operation, c.Admin.Path, c.Outcome)
	}
	return b.String()
}

func TestIssuerUnreachable(t *testing.T) {
	e := newEnv(t, false)
	e.issuer.Close()
	resp, body := e.get(t, "/ui/login")
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(body, "identity provider cannot be reached") {
		t.Errorf("sign-in with the issuer down: %s\n%s", resp.Status, body)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t, false)
	body := e.signIn(t, bob)
	if status, _ := e.post(t, "/ui/logout", url.Values{"csrf": {csrf(t, body)}}, nil); status != http.StatusOK {
		t.Fatalf("logout: %d", status)
	}
	c := *e.client
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(e.srv.URL + "/ui/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Errorf("GET /ui/ after logout: %s, want a redirect to sign in", resp.Status)
	}
}

func TestNewReportsEveryMissingDependency(t *testing.T) {
	_, err := New(Config{})
	for _, want := range []string{"Grants is required", "Authenticator is required", "Redis is required", "Audit is required", "Issuer is required", "ClientID and ClientSecret", "RedirectURL"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New(Config{}) = %v, want it to say %q", err, want)
		}
	}
}
