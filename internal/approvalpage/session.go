package approvalpage

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/jit"
)

// session is a signed-in person, stored in Redis under the digest of the
// random ID their session cookie holds.
type session struct {
	Name   string   `json:"name"`
	Groups []string `json:"groups,omitempty"`
	// AuthMethod and Identity are how the person signed in, for audit.
	AuthMethod string `json:"auth_method,omitempty"`
	Identity   string `json:"identity,omitempty"`
	// CSRF is the token every form of the session carries.
	CSRF string `json:"csrf"`
}

func (s *session) principal() jit.Principal {
	return jit.Principal{Name: s.Name, Groups: s.Groups, AuthMethod: s.AuthMethod, Identity: s.Identity}
}

// pendingLogin is a sign-in between the redirect to the provider and the
// callback, stored under the digest of the random ID the login cookie
// holds, which binds the callback to the browser that started it.
type pendingLogin struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE
}

// store keeps sessions and pending logins in Redis.
type store struct {
	rdb     redis.UniversalClient
	prefix  string
	timeout time.Duration
}

// errNoSession says a session or pending login is unknown or expired.
var errNoSession = errors.New("no such session")

func (s *store) key(kind, id string) string {
	d := sha256.Sum256([]byte(id))
	return s.prefix + "page:" + kind + ":" + hex.EncodeToString(d[:])
}

// put stores v under a new random ID for ttl and returns the ID.
func (s *store) put(ctx context.Context, kind string, v any, ttl time.Duration) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	id := rand.Text()
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.Set(ctx, s.key(kind, id), b, ttl).Err(); err != nil {
		return "", fmt.Errorf("store a %s: %w", kind, err)
	}
	return id, nil
}

// get reads the value under id into v; with take, it also deletes it, so
// that it is used once. An unknown ID is errNoSession.
func (s *store) get(ctx context.Context, kind, id string, v any, take bool) error {
	if id == "" {
		return errNoSession
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var b []byte
	var err error
	if take {
		b, err = s.rdb.GetDel(ctx, s.key(kind, id)).Bytes()
	} else {
		b, err = s.rdb.Get(ctx, s.key(kind, id)).Bytes()
	}
	switch {
	case errors.Is(err, redis.Nil):
		return errNoSession
	case err != nil:
		return fmt.Errorf("read a %s: %w", kind, err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("read a %s: %w", kind, err)
	}
	return nil
}

// del forgets the value under id.
func (s *store) del(ctx context.Context, kind, id string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := s.rdb.Del(ctx, s.key(kind, id)).Err(); err != nil {
		return fmt.Errorf("delete a %s: %w", kind, err)
	}
	return nil
}
