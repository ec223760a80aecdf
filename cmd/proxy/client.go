package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// client calls the admin API.
type client struct {
	base *url.URL
	auth func(*http.Request)
	http *http.Client
}

// clientFlags are the flags every client command takes.
type clientFlags struct {
	adminURL  string
	tokenFile string
	as        string
	stateDir  string
	output    string
}

func (f *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("JITPROXY_ADMIN_URL")
	if def == "" {
		def = "http://127.0.0.1:8081"
	}
	stateDir := getenv("JITPROXY_STATE_DIR")
	if stateDir == "" {
		stateDir = ".jitproxy"
	}
	fs.StringVar(&f.adminURL, "admin-url", def, "admin API URL (env JITPROXY_ADMIN_URL)")
	fs.StringVar(&f.tokenFile, "token-file", getenv("JITPROXY_TOKEN_FILE"), "file holding your bearer token: a static token, an OIDC ID token or a ServiceAccount token (env JITPROXY_TOKEN_FILE; or the token itself in env JITPROXY_TOKEN)")
	fs.StringVar(&f.as, "as", "", "act as this identity from the local identities file (STATE_DIR/identities.yaml)")
	fs.StringVar(&f.stateDir, "state-dir", stateDir, "state directory, for --as (env JITPROXY_STATE_DIR)")
	fs.StringVar(&f.output, "o", "text", "output: text or json")
}

// newClient picks the credential: --token-file, --as, JITPROXY_TOKEN, or
// the session credential in HTTPS_PROXY (an agent calling for itself).
func (f *clientFlags) newClient(getenv func(string) string) (*client, error) {
	base, err := url.Parse(f.adminURL)
	if err != nil || base.Host == "" {
		return nil, fmt.Errorf("admin URL %q is not a URL", f.adminURL)
	}
	if f.output != "text" && f.output != "json" {
		return nil, fmt.Errorf("-o %q: want text or json", f.output)
	}
	var token secret.Value
	switch {
	case f.tokenFile != "":
		b, err := os.ReadFile(f.tokenFile)
		if err != nil {
			return nil, err
		}
		token = secret.Value(strings.TrimSpace(string(b)))
	case f.as != "":
		if token, err = identityToken(filepath.Join(f.stateDir, "identities.yaml"), f.as); err != nil {
			return nil, err
		}
	case getenv("JITPROXY_TOKEN") != "":
		token = secret.Value(getenv("JITPROXY_TOKEN"))
	}
	c := &client{base: base, http: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{Proxy: nil}}}
	if !token.IsZero() {
		c.auth = func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+token.Reveal()) }
		return c, nil
	}
	for _, k := range []string{"HTTPS_PROXY", "https_proxy"} {
		if u, err := url.Parse(getenv(k)); err == nil && u.User != nil {
			pw, _ := u.User.Password()
			id := u.User.Username()
			c.auth = func(r *http.Request) { r.SetBasicAuth(id, pw) }
			return c, nil
		}
	}
	return nil, errors.New("no credential: pass --as NAME or --token-file, set JITPROXY_TOKEN, or run inside an agent session (HTTPS_PROXY)")
}

// do calls the API and decodes the answer into out. An API error becomes
// an error with the API's message.
func (c *client) do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := c.base.JoinPath(strings.Split(path, "?")[0])
	if _, q, ok := strings.Cut(path, "?"); ok {
		u.RawQuery = q
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	c.auth(req)
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("call the admin API: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return errors.New(esc(e.Error))
		}
		return fmt.Errorf("admin API answered %s", esc(resp.Status))
	}
	if out == nil {
		return nil
	}
	return json.Unmarshal(raw, out)
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
