// Package secret holds values that must never be printed, logged, audited or
// marshalled: tokens, session secrets, private keys.
package secret

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"log/slog"
)

const redacted = "[redacted]"

// Value is a secret string. Every way of printing or encoding it yields
// "[redacted]"; only Reveal returns the raw value. The zero Value is empty.
type Value string

// String implements fmt.Stringer and returns "[redacted]".
func (Value) String() string { return redacted }

// GoString implements fmt.GoStringer and returns "[redacted]".
func (Value) GoString() string { return redacted }

// LogValue implements slog.LogValuer and returns "[redacted]".
func (Value) LogValue() slog.Value { return slog.StringValue(redacted) }

// MarshalJSON returns the JSON string "[redacted]".
func (Value) MarshalJSON() ([]byte, error) { return []byte(`"` + redacted + `"`), nil }

// MarshalText returns "[redacted]", so encoders that prefer text (YAML, XML) redact too.
func (Value) MarshalText() ([]byte, error) { return []byte(redacted), nil }

// Reveal returns the raw value. Call it only where the value leaves the
// process on purpose: a header written upstream, a Redis write, a hash.
func (v Value) Reveal() string { return string(v) }

// IsZero reports whether the value is empty.
func (v Value) IsZero() bool { return v == "" }

// Equal reports whether v and o hold the same value, in constant time.
func (v Value) Equal(o Value) bool {
	return subtle.ConstantTimeCompare([]byte(v), []byte(o)) == 1
}

// Random returns a new value of n random bytes, base64url-encoded without padding.
func Random(n int) Value {
	b := make([]byte, n)
	rand.Read(b) // crypto/rand.Read never returns an error (Go 1.24+).
	return Value(base64.RawURLEncoding.EncodeToString(b))
}
