package sts

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Session tag keys.
const (
	TagUser  = "jitproxy-user"
	TagAgent = "jitproxy-agent"
	TagGrant = "jitproxy-grant"
)

// STS's limits on names.
const (
	maxSessionName    = 64 // RoleSessionName and SourceIdentity
	minSourceIdentity = 2
	maxTagValue       = 256
	digestSuffixLen   = 9 // "." and eight hex digits
)

// sessionNameChar reports whether STS accepts r in a RoleSessionName or a
// SourceIdentity: [\w+=,.@-].
func sessionNameChar(r rune) bool {
	return r < utf8.RuneSelf && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("_+=,.@-", r))
}

// tagValueChar reports whether STS accepts r in a session tag value:
// [\p{L}\p{Z}\p{N}_.:/=+\-@].
func tagValueChar(r rune) bool {
	return unicode.IsLetter(r) || unicode.In(r, unicode.Z) || unicode.IsNumber(r) || strings.ContainsRune("_.:/=+-@", r)
}

// fit makes s acceptable where only runes for which ok holds, and at least
// minLen and at most maxLen runes, are: other runes become '_'. If that
// changed s, or s was too short or too long, or already ends like a fitted
// value, the result ends with '.' and eight hex digits of the SHA-256 of s
// (cutting what comes before to make room), so that different inputs give
// different results (short of a deliberate collision of 32 bits).
func fit(s string, minLen, maxLen int, ok func(rune) bool) string {
	var b strings.Builder
	changed := !utf8.ValidString(s) || looksFitted(s)
	n := 0
	for _, r := range s {
		if !ok(r) {
			r, changed = '_', true
		}
		b.WriteRune(r)
		n++
	}
	if !changed && n >= minLen && n <= maxLen {
		return s
	}
	out := []rune(b.String())
	if keep := maxLen - digestSuffixLen; len(out) > keep {
		out = out[:keep]
	}
	sum := sha256.Sum256([]byte(s))
	return string(out) + "." + hex.EncodeToString(sum[:4])
}

// looksFitted reports whether s ends with '.' and eight lower-case hex
// digits, as fit's changed values do: such an s is fitted too, so that no
// one can name themselves what fit makes of another name.
func looksFitted(s string) bool {
	i := len(s) - digestSuffixLen
	if i < 0 || s[i] != '.' {
		return false
	}
	return strings.Trim(s[i+1:], "0123456789abcdef") == ""
}

// roleSessionName names the session GRANT.USER, fitted to STS's rules.
func roleSessionName(grantID, user string) string {
	name := grantID
	if user != "" {
		name += "." + user
	}
	if name == "" {
		name = "jitproxy"
	}
	return fit(name, minSourceIdentity, maxSessionName, sessionNameChar)
}

// sourceIdentity returns the user, fitted to STS's rules for a
// SourceIdentity ("aws:" cannot start one: ':' is not allowed anyway).
func sourceIdentity(user string) string {
	return fit(user, minSourceIdentity, maxSessionName, sessionNameChar)
}

// tagValue returns v fitted to STS's rules for a session tag value.
func tagValue(v string) string {
	return fit(v, 0, maxTagValue, tagValueChar)
}
