package jit

import (
	"crypto/sha256"
	"encoding/hex"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Session is an agent session: one agent, acting for one user, known to the
// proxy by its ID and a secret given once, when the session is created.
type Session struct {
	ID        string    `json:"id"`
	Agent     string    `json:"agent"`
	User      string    `json:"user"`
	Groups    []string  `json:"groups,omitempty"`
	CreatedBy string    `json:"created_by"`
	CreatedAt time.Time `json:"created_at"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Caller returns the data-plane identity of requests made in the session.
func (s *Session) Caller() access.Caller {
	return access.Caller{Session: s.ID, Agent: s.Agent, User: s.User, Groups: s.Groups}
}

func (s *Session) auditView() *audit.Session {
	return &audit.Session{ID: s.ID, Agent: s.Agent, User: s.User, Groups: s.Groups, ExpiresAt: s.ExpiresAt}
}

// storedSession is a session as kept in Redis: with the digest of its
// secret, never the secret.
type storedSession struct {
	Session
	SecretDigest string `json:"secret_digest"`
}

func secretDigest(v secret.Value) string {
	d := sha256.Sum256([]byte(v.Reveal()))
	return hex.EncodeToString(d[:])
}
