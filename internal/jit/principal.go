package jit

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Principal is an authenticated caller of the admin API: a user (a person
// or a service, whichever of their identities they authenticated with), or
// an agent with its session credential.
type Principal struct {
	// Name is the user's name (see Users), or for an agent the user it
	// acts for. Self-approval is checked against it.
	Name   string
	Groups []string
	// AuthMethod is how the principal authenticated: AuthToken, AuthOIDC,
	// AuthServiceAccount or AuthSession; "" when unknown (built in code).
	AuthMethod string
	// Identity is the identity it authenticated as (IdentityRef's form,
	// such as oidc:corp:alice@example.com), for audit; never a secret.
	Identity string
	// Session is set when the principal authenticated with a session
	// credential: it is an agent, not a person.
	Session string
	// Agent names the agent of a session principal.
	Agent string
}

// IsAgent reports whether p authenticated with a session credential.
func (p Principal) IsAgent() bool { return p.Session != "" }

func (p Principal) actor() *audit.Actor {
	return &audit.Actor{Name: p.Name, Groups: p.Groups, Session: p.Session, Agent: p.Agent, AuthMethod: p.AuthMethod, Identity: p.Identity}
}

// systemActor is the actor of state changes jitproxy makes by itself.
var systemActor = &audit.Actor{Name: "jitproxy"}

// Identity is a static admin-API identity from the configuration.
type Identity struct {
	Name   string
	Groups []string
	Token  secret.Value
}

// MinTokenLength is the shortest static token accepted, in characters.
const MinTokenLength = 16

// Identities authenticates static bearer tokens. It is safe for concurrent
// use. Tokens are held only as SHA-256 digests.
type Identities struct {
	byDigest map[[32]byte]Principal
}

// NewIdentities validates ids: every name and token present, tokens at least
// MinTokenLength long, no name or token used twice. Each identity's
// principal is its user in users (Users.Resolve of token:NAME); nil users
// make each identity a user of its own name.
func NewIdentities(ids []Identity, users *Users) (*Identities, error) {
	out := &Identities{byDigest: make(map[[32]byte]Principal, len(ids))}
	names := map[string]bool{}
	var errs []error
	for i, id := range ids {
		switch {
		case id.Name == "":
			errs = append(errs, fmt.Errorf("identity %d: name is required", i))
		case names[id.Name]:
			errs = append(errs, fmt.Errorf("identity %q is defined twice", id.Name))
		case len(id.Token.Reveal()) < MinTokenLength:
			errs = append(errs, fmt.Errorf("identity %q: token must be at least %d characters", id.Name, MinTokenLength))
		}
		names[id.Name] = true
		d := sha256.Sum256([]byte(id.Token.Reveal()))
		if _, dup := out.byDigest[d]; dup && id.Token != "" {
			errs = append(errs, fmt.Errorf("identity %q: token is shared with another identity", id.Name))
		}
		out.byDigest[d], _ = users.Resolve(IdentityRef{Method: AuthToken, Subject: id.Name}, id.Groups)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}

// Authenticate returns the principal whose token is token. The lookup is by
// digest, so its timing says nothing about the token.
func (ids *Identities) Authenticate(token secret.Value) (Principal, bool) {
	if token.IsZero() {
		return Principal{}, false
	}
	p, ok := ids.byDigest[sha256.Sum256([]byte(token.Reveal()))]
	return p, ok
}
