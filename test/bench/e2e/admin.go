package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"
)

// admin calls a jitproxy's admin API over HTTP, not through the CLI, whose
// start-up (a process, its configuration) would blur the timing.
type admin struct {
	url    string
	client *http.Client
}

func newAdmin(j *jitproxy) *admin {
	return &admin{url: j.adminURL, client: &http.Client{Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 256}, Timeout: 30 * time.Second}}
}

// call sends body (if not nil) as JSON with auth and decodes a 2xx answer
// into out (if not nil); any other status is an error.
func (a *admin) call(ctx context.Context, method, path string, auth func(*http.Request), body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, a.url+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	auth(req)
	resp, err := a.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %.300s", method, path, resp.Status, b)
	}
	if out != nil {
		return json.Unmarshal(b, out)
	}
	return nil
}

func bearer(token string) func(*http.Request) {
	return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token) }
}

// agent is one agent session: what its tools need to reach the target
// through the proxy, and its credential for the admin API.
type agent struct {
	session string
	proxy   *url.URL // the forward proxy, with the session credential
	roots   *x509.CertPool
	url     string // the pod list, at the address agents use
}

// auth authenticates as the agent itself (its session credential, as the
// CLI does inside an agent's environment).
func (ag *agent) auth(r *http.Request) {
	pw, _ := ag.proxy.User.Password()
	r.SetBasicAuth(ag.proxy.User.Username(), pw)
}

// subject is how the agent's tools reach the target: a client through the
// proxy, sending agentToken.
func (ag *agent) subject() *subject {
	return &subject{name: ag.session, roots: ag.roots, proxy: ag.proxy, url: ag.url, token: agentToken}
}

// newAgent creates a session for user (group developers) as runner.
func (a *admin) newAgent(ctx context.Context, user string) (*agent, error) {
	var ans struct {
		Session   struct{ ID string }
		ProxyURL  string `json:"proxy_url"`
		CACertPEM string `json:"ca_cert_pem"`
		Targets   []struct{ Server string }
	}
	in := map[string]any{"agent": "bench", "user": user, "groups": []string{"developers"}}
	if err := a.call(ctx, http.MethodPost, "/v1/sessions", bearer(runnerToken), in, &ans); err != nil {
		return nil, fmt.Errorf("create session: %w", err)
	}
	u, err := url.Parse(ans.ProxyURL)
	if err != nil || u.User == nil || len(ans.Targets) == 0 {
		return nil, fmt.Errorf("create session: answer without a proxy URL or targets (%v)", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM([]byte(ans.CACertPEM)) {
		return nil, fmt.Errorf("create session: no CA certificate")
	}
	return &agent{session: ans.Session.ID, proxy: u, roots: roots, url: ans.Targets[0].Server + path}, nil
}

// requestGrant requests a pod-reader grant for namespace demo as the agent
// itself, so that the grant is limited to its session, and wants it ACTIVE
// at once (pod-reader needs no approval). It returns the grant's ID.
func (a *admin) requestGrant(ctx context.Context, ag *agent) (string, error) {
	var g struct{ ID, State string }
	in := map[string]string{"policy": "pod-reader", "namespace": "demo", "reason": "bench"}
	if err := a.call(ctx, http.MethodPost, "/v1/grants", ag.auth, in, &g); err != nil {
		return "", fmt.Errorf("request grant: %w", err)
	}
	if g.State != "ACTIVE" {
		return "", fmt.Errorf("request grant: %s is %s, not ACTIVE", g.ID, g.State)
	}
	return g.ID, nil
}

// revoke revokes a grant as admin.
func (a *admin) revoke(ctx context.Context, grant string) error {
	return a.call(ctx, http.MethodPost, "/v1/grants/"+grant+"/revoke", bearer(adminToken), map[string]string{"comment": "bench"}, nil)
}

// endSession ends a session (and its grants) as runner.
func (a *admin) endSession(ctx context.Context, session string) error {
	return a.call(ctx, http.MethodDelete, "/v1/sessions/"+session, bearer(runnerToken), nil, nil)
}
