package jit

import (
	"cmp"
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"k8s.io/apimachinery/pkg/util/validation"
)

// Bounds on the names and free text that clients send and access policies
// hold. They keep grants, sessions and audit events small, and keep what a
// terminal or log shows of them from being read as control sequences or
// extra lines.
const (
	// MaxNameLength bounds, in bytes, a session's agent, user and each of
	// its groups, and each resourceName and nonResourceURL of a policy.
	MaxNameLength = 253
	// MaxGroups bounds the groups of a session.
	MaxGroups = 64
	// MaxTextLength bounds, in bytes, a grant request's reason and an
	// approval's, denial's or revocation's comment.
	MaxTextLength = 1024
)

// validate checks the names of a session request; errors wrap ErrInvalid.
func (r SessionRequest) validate() error {
	if r.Agent == "" || r.User == "" {
		return fmt.Errorf("%w: agent and user are required", ErrInvalid)
	}
	if err := invalid(checkName("agent", r.Agent), checkName("user", r.User)); err != nil {
		return err
	}
	if strings.Contains(r.User, ":") {
		return fmt.Errorf("%w: user %q must not contain ':'", ErrInvalid, r.User)
	}
	if len(r.Groups) > MaxGroups {
		return fmt.Errorf("%w: %d groups, more than the limit of %d", ErrInvalid, len(r.Groups), MaxGroups)
	}
	for i, g := range r.Groups {
		if err := checkName(fmt.Sprintf("groups[%d]", i), g); err != nil {
			return invalid(err)
		}
	}
	return nil
}

// invalid returns the first non-nil error of errs wrapped in ErrInvalid,
// or nil.
func invalid(errs ...error) error {
	if err := cmp.Or(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

// checkName returns an error, naming field but not repeating v, unless v is
// a name: not empty, at most MaxNameLength bytes of valid UTF-8, every
// character printable (spaces only inside).
func checkName(field, v string) error {
	if v == "" {
		return fmt.Errorf("%s is empty", field)
	}
	if err := checkPrintable(field, v, MaxNameLength); err != nil {
		return err
	}
	if strings.TrimSpace(v) != v {
		return fmt.Errorf("%s starts or ends with a space", field)
	}
	return nil
}

// checkText returns an error, naming field but not repeating v, unless v is
// free text: at most MaxTextLength bytes of valid UTF-8, every character
// printable. Spaces are allowed; newlines, tabs and other control
// characters are not. Empty text passes.
func checkText(field, v string) error {
	return checkPrintable(field, v, MaxTextLength)
}

func checkPrintable(field, v string, max int) error {
	if len(v) > max {
		return fmt.Errorf("%s is %d bytes, more than the limit of %d", field, len(v), max)
	}
	if !utf8.ValidString(v) {
		return fmt.Errorf("%s is not valid UTF-8", field)
	}
	for i, r := range v {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%s holds the control or non-printable character %q at byte %d", field, r, i)
		}
	}
	return nil
}

// checkNamespace returns an error unless ns is a valid Kubernetes namespace
// name: a DNS-1123 label.
func checkNamespace(ns string) error {
	msgs := validation.IsDNS1123Label(ns)
	if len(msgs) == 0 {
		return nil
	}
	return fmt.Errorf("namespace %s is not a DNS-1123 label: %s", quoteShort(ns), strings.Join(msgs, "; "))
}

// quoteShort quotes v as Go would, escaping what is not printable, and
// shortens it to its first 64 bytes.
func quoteShort(v string) string {
	const n = 64
	if len(v) <= n {
		return strconv.Quote(v)
	}
	return strconv.Quote(v[:n]) + "..."
}
