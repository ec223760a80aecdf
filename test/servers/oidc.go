package servers

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// OIDCUser is a user of the OpenID provider.
type OIDCUser struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
}

// OIDCProvider is a running oidc-provider (test/servers/oidc): zitadel/oidc's
// OpenID provider with a username and password form, plain HTTP on
// 127.0.0.1, with one confidential web client.
type OIDCProvider struct {
	*Process
	Issuer string // http://127.0.0.1:PORT/
}

// StartOIDCProvider starts oidc-provider with its files under dir, the
// users, and the web client clientID/clientSecret redirecting to redirectURI.
func StartOIDCProvider(ctx context.Context, dir string, users []OIDCUser, clientID, clientSecret, redirectURI string) (*OIDCProvider, error) {
	bin, err := Bin("oidc-provider")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "oidc-provider")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	b, err := json.Marshal(users)
	if err != nil {
		return nil, err
	}
	usersFile, secretFile := filepath.Join(dir, "users.json"), filepath.Join(dir, "client-secret")
	if err := os.WriteFile(usersFile, b, 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(secretFile, []byte(clientSecret), 0o600); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := "127.0.0.1:" + strconv.Itoa(port)
	p, err := start("oidc-provider", dir, bin, []string{
		"-listen", addr, "-users", usersFile, "-client-id", clientID, "-client-secret-file", secretFile, "-redirect-uri", redirectURI,
	}, nil)
	if err != nil {
		return nil, err
	}
	o := &OIDCProvider{Process: p, Issuer: "http://" + addr + "/"}
	if err := p.waitReady(ctx, time.Minute, httpOK(http.DefaultClient, o.Issuer+".well-known/openid-configuration", nil)); err != nil {
		p.Stop()
		return nil, fmt.Errorf("oidc-provider: %w", err)
	}
	return o, nil
}

// FreePort returns a port that was free on 127.0.0.1 a moment ago.
func FreePort() (int, error) { return freePort() }
