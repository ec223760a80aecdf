package jit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// TokenVerifier verifies the bearer tokens (JWTs) of one issuer: an OIDC
// provider, or a cluster that reviews ServiceAccount tokens. VerifyToken
// returns the principal of the token's user; an error wrapping
// ErrUnauthenticated when the token is not valid or its identity is mapped
// to no user; an error wrapping ErrAuthUnavailable when it cannot tell now.
// Its messages are safe to show and never hold the token.
type TokenVerifier interface {
	VerifyToken(ctx context.Context, token secret.Value) (Principal, error)
}

// maxJWTLength bounds the tokens UnverifiedIssuer reads.
const maxJWTLength = 16 << 10

// UnverifiedIssuer returns the iss claim of a JWT (a JWS in compact form:
// three base64url parts, a JSON object header and payload), verifying
// nothing: it only picks the TokenVerifier to ask, and must never be
// trusted. ok is false for anything else, and for a token longer than
// 16 KiB.
func UnverifiedIssuer(token string) (iss string, ok bool) {
	if len(token) > maxJWTLength {
		return "", false
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 || parts[2] == "" {
		return "", false
	}
	var header struct {
		Alg string `json:"alg"`
	}
	if !decodeSegment(parts[0], &header) || header.Alg == "" || strings.EqualFold(header.Alg, "none") {
		return "", false
	}
	var claims struct {
		Iss string `json:"iss"`
	}
	if !decodeSegment(parts[1], &claims) || claims.Iss == "" {
		return "", false
	}
	return claims.Iss, true
}

// UnverifiedExpiry returns the exp claim of a JWT (see UnverifiedIssuer),
// verifying nothing: call it only on a token that has been verified.
func UnverifiedExpiry(token string) (time.Time, bool) {
	parts := strings.Split(token, ".")
	if len(token) > maxJWTLength || len(parts) != 3 {
		return time.Time{}, false
	}
	var claims struct {
		Exp *json.Number `json:"exp"`
	}
	if !decodeSegment(parts[1], &claims) || claims.Exp == nil {
		return time.Time{}, false
	}
	sec, err := claims.Exp.Float64()
	if err != nil || sec <= 0 || sec > 1<<40 {
		return time.Time{}, false
	}
	return time.Unix(int64(sec), 0), true
}

// decodeSegment decodes one base64url (unpadded) part of a JWT into v.
func decodeSegment(seg string, v any) bool {
	b, err := base64.RawURLEncoding.DecodeString(seg)
	if err != nil {
		return false
	}
	return json.Unmarshal(b, v) == nil
}
