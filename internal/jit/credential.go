package jit

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// Limits on a session credential header; anything longer is not ours.
const (
	maxCredentialHeader = 512
	maxSessionSecret    = 256
)

var sessionIDPattern = regexp.MustCompile(`^s-[a-z2-7]{16}$`)

// ErrMalformedCredential: the header is not a Basic session credential.
var ErrMalformedCredential = errors.New("malformed session credential")

// ParseSessionCredential parses the value of a Proxy-Authorization or
// Authorization header of the form "Basic base64(SESSION-ID:SECRET)", as
// clients send for a proxy URL http://SESSION-ID:SECRET@host:port. It checks
// form only; AuthenticateSession checks the secret. The error never
// contains the header.
func ParseSessionCredential(header string) (id string, sec secret.Value, err error) {
	if len(header) > maxCredentialHeader {
		return "", "", ErrMalformedCredential
	}
	scheme, encoded, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Basic") {
		return "", "", ErrMalformedCredential
	}
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(encoded))
	if err != nil {
		return "", "", ErrMalformedCredential
	}
	id, s, ok := strings.Cut(string(raw), ":")
	if !ok || !sessionIDPattern.MatchString(id) || s == "" || len(s) > maxSessionSecret {
		return "", "", ErrMalformedCredential
	}
	return id, secret.Value(s), nil
}
