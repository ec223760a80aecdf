package jit

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Auth methods: how a Principal authenticated to the admin API.
const (
	// AuthToken is a static bearer token of the configuration.
	AuthToken = "token"
	// AuthOIDC is an OpenID Connect ID token from a configured issuer.
	AuthOIDC = "oidc"
	// AuthServiceAccount is a Kubernetes ServiceAccount token, reviewed by
	// a target cluster (TokenReview).
	AuthServiceAccount = "serviceaccount"
	// AuthSession is an agent's session credential.
	AuthSession = "session"
)

// IdentityRef names one identity a user authenticates with, written
// METHOD:SOURCE:SUBJECT, or token:NAME for a static token:
//
//	token:alice-laptop                    the static identity alice-laptop
//	oidc:corp:alice@example.com           the OIDC provider corp's user whose username claim is alice@example.com
//	serviceaccount:demo:ci/runner         the ServiceAccount ci/runner of the cluster of target demo
//
// An OIDC subject may itself hold colons: everything after the second
// colon is the subject.
type IdentityRef struct {
	// Method is AuthToken, AuthOIDC or AuthServiceAccount.
	Method string
	// Source is the OIDC provider's or the target's name; "" for a token.
	Source string
	// Subject is the static identity's name, the OIDC username claim's
	// value, or a ServiceAccount's NAMESPACE/NAME.
	Subject string
}

// String is the reference as ParseIdentity reads it.
func (r IdentityRef) String() string {
	if r.Method == AuthToken {
		return AuthToken + ":" + r.Subject
	}
	return r.Method + ":" + r.Source + ":" + r.Subject
}

// ParseIdentity parses an identity reference (see IdentityRef). An unknown
// method, an empty part or a ServiceAccount that is not NAMESPACE/NAME
// (DNS labels and subdomains) is an error.
func ParseIdentity(s string) (IdentityRef, error) {
	method, rest, ok := strings.Cut(s, ":")
	if !ok {
		return IdentityRef{}, fmt.Errorf("identity %q: want token:NAME, oidc:PROVIDER:SUBJECT or serviceaccount:TARGET:NAMESPACE/NAME", s)
	}
	if method == AuthToken {
		if rest == "" || strings.TrimSpace(rest) != rest {
			return IdentityRef{}, fmt.Errorf("identity %q: want token:NAME", s)
		}
		return IdentityRef{Method: AuthToken, Subject: rest}, nil
	}
	if method != AuthOIDC && method != AuthServiceAccount {
		return IdentityRef{}, fmt.Errorf("identity %q: unknown kind %q: want token, oidc or serviceaccount", s, method)
	}
	source, subject, ok := strings.Cut(rest, ":")
	if !ok || source == "" || subject == "" || strings.TrimSpace(subject) != subject {
		return IdentityRef{}, fmt.Errorf("identity %q: want %s:SOURCE:SUBJECT", s, method)
	}
	if method == AuthServiceAccount {
		ns, name, ok := strings.Cut(subject, "/")
		if !ok || checkNamespace(ns) != nil || !isSubdomain(name) {
			return IdentityRef{}, fmt.Errorf("identity %q: want serviceaccount:TARGET:NAMESPACE/NAME", s)
		}
	}
	return IdentityRef{Method: method, Source: source, Subject: subject}, nil
}

// isSubdomain reports whether s is a DNS-1123 subdomain, the form of a
// ServiceAccount's name.
func isSubdomain(s string) bool { return len(validation.IsDNS1123Subdomain(s)) == 0 }

// User is a person or a service, with every identity they authenticate with.
type User struct {
	// Name is the user's name: the Principal's Name whichever identity
	// authenticated, what access policies' subjects and approvers name,
	// and what self-approval is checked against.
	Name string
	// Groups are the user's groups, added to those the identity brings
	// (a static identity's groups, an OIDC groups claim).
	Groups []string
	// Identities are the user's identities (see ParseIdentity).
	Identities []string
}

// IdentitySources says which sources identities may name: the static
// identities, the OIDC providers and the targets that review
// ServiceAccount tokens.
type IdentitySources struct {
	Tokens          []string
	OIDC            []string
	ServiceAccounts []string
}

// Users maps identities to users. The zero value and nil map nothing: each
// static identity is then a user of its own name. It is safe for
// concurrent use.
type Users struct {
	byIdentity map[string]*User
	byName     map[string]*User
	tokens     map[string]bool
}

// NewUsers validates users against the sources: every user named once,
// every identity well formed, naming a configured source, and mapped to
// one user only. Every problem is reported.
func NewUsers(users []User, src IdentitySources) (*Users, error) {
	u := &Users{byIdentity: map[string]*User{}, byName: map[string]*User{}, tokens: map[string]bool{}}
	for _, t := range src.Tokens {
		u.tokens[t] = true
	}
	var errs []error
	for i := range users {
		usr := &users[i]
		switch {
		case usr.Name == "":
			errs = append(errs, fmt.Errorf("user %d: name is required", i))
			continue
		case strings.TrimSpace(usr.Name) != usr.Name || strings.HasPrefix(usr.Name, "rule:"):
			errs = append(errs, fmt.Errorf("user %q: a name may not start with rule: or have spaces around it", usr.Name))
		case u.byName[usr.Name] != nil:
			errs = append(errs, fmt.Errorf("user %q is defined twice", usr.Name))
		}
		u.byName[usr.Name] = usr
		if len(usr.Identities) == 0 {
			errs = append(errs, fmt.Errorf("user %q: list at least one identity", usr.Name))
		}
		for _, s := range usr.Identities {
			ref, err := ParseIdentity(s)
			if err != nil {
				errs = append(errs, fmt.Errorf("user %q: %w", usr.Name, err))
				continue
			}
			if err := src.check(ref); err != nil {
				errs = append(errs, fmt.Errorf("user %q: identity %q: %w", usr.Name, s, err))
				continue
			}
			key := ref.String()
			if other := u.byIdentity[key]; other != nil {
				errs = append(errs, fmt.Errorf("identity %q is mapped to both user %q and user %q", s, other.Name, usr.Name))
				continue
			}
			u.byIdentity[key] = usr
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return u, nil
}

func (src IdentitySources) check(ref IdentityRef) error {
	switch {
	case ref.Method == AuthToken && !slices.Contains(src.Tokens, ref.Subject):
		return fmt.Errorf("no static identity %q is configured", ref.Subject)
	case ref.Method == AuthOIDC && !slices.Contains(src.OIDC, ref.Source):
		return fmt.Errorf("no OIDC provider %q is configured (admin.oidc)", ref.Source)
	case ref.Method == AuthServiceAccount && !slices.Contains(src.ServiceAccounts, ref.Source):
		return fmt.Errorf("target %q does not review ServiceAccount tokens (admin.service_accounts)", ref.Source)
	}
	return nil
}

// Resolve returns the principal of an authenticated identity: the user it
// is mapped to, with groups the user's and those the identity brings
// (asserted: a static identity's groups, an OIDC groups claim). A static
// identity mapped to no user belongs to the user of its own name, or is a
// user of its own. For any other identity mapped to no user, ok is false.
func (u *Users) Resolve(ref IdentityRef, asserted []string) (p Principal, ok bool) {
	var usr *User
	if u != nil {
		usr = u.byIdentity[ref.String()]
		if usr == nil && ref.Method == AuthToken {
			usr = u.byName[ref.Subject]
		}
	}
	p = Principal{AuthMethod: ref.Method, Identity: ref.String()}
	switch {
	case usr != nil:
		p.Name, p.Groups = usr.Name, mergeGroups(usr.Groups, asserted)
	case ref.Method == AuthToken:
		p.Name, p.Groups = ref.Subject, mergeGroups(nil, asserted)
	default:
		return Principal{}, false
	}
	return p, true
}

// Taken reports whether name belongs to a configured user, a static
// identity or jitproxy itself: an identity mapped to no user may not take
// it as its own.
func (u *Users) Taken(name string) bool {
	if name == systemActor.Name || strings.HasPrefix(name, "rule:") {
		return true
	}
	if u == nil {
		return false
	}
	return u.byName[name] != nil || u.tokens[name]
}

// mergeGroups is a and then the groups of b not in a, nil when both are empty.
func mergeGroups(a, b []string) []string {
	var out []string
	for _, g := range slices.Concat(a, b) {
		if g != "" && !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}
