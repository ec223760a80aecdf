package sts

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/access"
)

// MaxPolicyLength is the most characters STS accepts in an inline session
// policy.
const MaxPolicyLength = 2048

// ErrPolicyTooLarge: the session policy for a grant would exceed
// MaxPolicyLength. The grant cannot be served by STS as it is; jitproxy
// never sends a broader policy instead.
var ErrPolicyTooLarge = errors.New("session policy too large for STS")

type policyDocument struct {
	Version   string      `json:"Version"`
	Statement []statement `json:"Statement"`
}

type statement struct {
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// SessionPolicy returns the IAM policy document that allows exactly perms,
// compact and ASCII-only, as sent to STS: one Allow statement per
// permission, in order, with its Actions and Resources (sorted, without
// repeats) and, when it names Regions, the condition
// {"StringEquals":{"aws:RequestedRegion":[...]}}. Requests to global
// services (IAM, STS's global endpoint, CloudFront, Route 53) carry
// aws:RequestedRegion us-east-1, so a permission for them needs that
// region or none. The same permissions always give the same document.
//
// It returns an error if perms is empty, if a permission has no action or
// no resource (IAM would reject the statement) or an empty entry, and an
// error wrapping ErrPolicyTooLarge if the document exceeds MaxPolicyLength.
func SessionPolicy(perms []access.AWSPermission) (string, error) {
	if len(perms) == 0 {
		return "", errors.New("the grant has no AWS permissions")
	}
	doc := policyDocument{Version: "2012-10-17"}
	var errs []error
	for i, p := range perms {
		st := statement{Effect: "Allow", Action: sortedSet(p.Actions), Resource: sortedSet(p.Resources)}
		switch {
		case len(st.Action) == 0:
			errs = append(errs, fmt.Errorf("AWS permission %d has no action", i))
		case len(st.Resource) == 0:
			errs = append(errs, fmt.Errorf("AWS permission %d has no resource (an action on no particular resource needs \"*\")", i))
		case slices.Contains(st.Action, "") || slices.Contains(st.Resource, "") || slices.Contains(p.Regions, ""):
			errs = append(errs, fmt.Errorf("AWS permission %d has an empty action, resource or region", i))
		}
		if regions := sortedSet(p.Regions); len(regions) > 0 {
			st.Condition = map[string]map[string][]string{"StringEquals": {"aws:RequestedRegion": regions}}
		}
		doc.Statement = append(doc.Statement, st)
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(doc); err != nil {
		return "", fmt.Errorf("encode session policy: %w", err)
	}
	policy := asciiJSON(strings.TrimSuffix(buf.String(), "\n"))
	if len(policy) > MaxPolicyLength {
		return "", fmt.Errorf("%w: %d characters for %d permissions, more than the %d STS accepts; narrow the access policy's AWS permissions (fewer or wildcard resources)",
			ErrPolicyTooLarge, len(policy), len(perms), MaxPolicyLength)
	}
	return policy, nil
}

func sortedSet(s []string) []string {
	if len(s) == 0 {
		return nil
	}
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// asciiJSON escapes every non-ASCII character of the JSON text s as \uXXXX
// (a UTF-16 surrogate pair above U+FFFF), since STS accepts no character
// above U+00FF in a policy. The length checked is that of the escaped
// text, as sent. Outside strings, JSON text from encoding/json is ASCII
// already.
func asciiJSON(s string) string {
	if !slices.ContainsFunc([]byte(s), func(b byte) bool { return b >= utf8.RuneSelf }) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < utf8.RuneSelf:
			b.WriteRune(r)
		case r > 0xFFFF:
			r -= 0x10000
			fmt.Fprintf(&b, `\u%04x\u%04x`, 0xD800+(r>>10), 0xDC00+(r&0x3FF))
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.String()
}
