// Command oidc-provider is the OpenID provider the approval page's browser
// test logs in with: zitadel/oidc's OpenID Certified provider library
// (github.com/zitadel/oidc/v3/pkg/op) with its example's login form and
// in-memory storage, served on a loopback address with an issuer, users
// and one confidential web client from the command line. Its login form
// is a real HTML form a browser fills in; the ID tokens it issues carry
// the users' email, profile and groups claims.
//
//	oidc-provider -listen 127.0.0.1:PORT -users users.json \
//	    -client-id jitproxy -client-secret-file secret -redirect-uri URL
//
// users.json is a list of {"id", "username", "password", "email",
// "groups"}.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strings"

	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "oidc-provider:", err)
		os.Exit(1)
	}
}

type user struct {
	ID       string   `json:"id"`
	Username string   `json:"username"`
	Password string   `json:"password"`
	Email    string   `json:"email"`
	Groups   []string `json:"groups"`
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:9998", "address to serve on; the issuer is http://ADDRESS/")
	usersFile := flag.String("users", "", "JSON list of users")
	clientID := flag.String("client-id", "jitproxy", "the web client's ID")
	secretFile := flag.String("client-secret-file", "", "file holding the web client's secret")
	redirect := flag.String("redirect-uri", "", "the web client's redirect URI")
	flag.Parse()
	if *usersFile == "" || *secretFile == "" || *redirect == "" {
		return fmt.Errorf("-users, -client-secret-file and -redirect-uri are required")
	}
	b, err := os.ReadFile(*usersFile)
	if err != nil {
		return err
	}
	var users []user
	if err := json.Unmarshal(b, &users); err != nil {
		return fmt.Errorf("users %s: %w", *usersFile, err)
	}
	sec, err := os.ReadFile(*secretFile)
	if err != nil {
		return err
	}
	st := userStore{byID: map[string]*storage.User{}}
	groups := map[string][]string{}
	for _, u := range users {
		st.byID[u.ID] = &storage.User{
			ID: u.ID, Username: u.Username, Password: u.Password, FirstName: u.Username, LastName: "Test",
			Email: u.Email, EmailVerified: true, PreferredLanguage: language.English,
		}
		groups[u.ID] = u.Groups
	}
	storage.RegisterClients(storage.WebClient(*clientID, strings.TrimSpace(string(sec)), *redirect))
	issuer := "http://" + *listen + "/"
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	router := exampleop.SetupServer(issuer, claimsStorage{Storage: storage.NewStorage(st), groups: groups}, log, false)
	log.Info("serving", "issuer", issuer)
	return http.ListenAndServe(*listen, router)
}

// userStore serves the users of the -users file.
type userStore struct{ byID map[string]*storage.User }

func (s userStore) GetUserByID(id string) *storage.User { return s.byID[id] }
func (s userStore) ExampleClientID() string             { return storage.ServiceUserID }
func (s userStore) GetUserByUsername(name string) *storage.User {
	for _, u := range s.byID {
		if u.Username == name {
			return u
		}
	}
	return nil
}

// claimsStorage puts the userinfo claims of the scopes asked for, and the
// user's groups, into ID tokens, as most providers do.
type claimsStorage struct {
	*storage.Storage
	groups map[string][]string
}

func (s claimsStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, id)
	if err != nil {
		return nil, err
	}
	return assertClaims{c}, nil
}

func (s claimsStorage) SetUserinfoFromRequest(ctx context.Context, ui *oidc.UserInfo, token op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, ui, token, scopes); err != nil {
		return err
	}
	if g := s.groups[token.GetSubject()]; g != nil {
		ui.AppendClaims("groups", g)
	}
	return nil
}

type assertClaims struct{ op.Client }

func (assertClaims) IDTokenUserinfoClaimsAssertion() bool { return true }
