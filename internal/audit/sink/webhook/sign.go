package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Signed webhooks. With a secret file, every POST carries
//
//	X-Jitproxy-Timestamp: the Unix time of sending, in seconds
//	X-Jitproxy-Signature: v1=HEX
//
// where HEX is the hex HMAC-SHA256, keyed with the secret, of the
// timestamp, a dot and the body. A receiver checks both with Verify (or
// the same computation in its own language) and refuses a timestamp
// outside its replay window, so that a captured POST cannot be sent again
// later. The sink signs each attempt anew, so a retried POST carries a
// fresh timestamp.

const (
	// TimestampHeader and SignatureHeader carry a POST's signature.
	TimestampHeader = "X-Jitproxy-Timestamp"
	SignatureHeader = "X-Jitproxy-Signature"
	signaturePrefix = "v1="
)

// sign returns the headers' values for body sent at now with key.
func sign(key []byte, body []byte, now time.Time) (timestamp, signature string) {
	timestamp = strconv.FormatInt(now.Unix(), 10)
	return timestamp, signaturePrefix + hex.EncodeToString(mac(key, timestamp, body))
}

func mac(key []byte, timestamp string, body []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(timestamp))
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(nil)
}

// ErrBadSignature: a POST's signature does not verify.
var ErrBadSignature = errors.New("webhook signature does not verify")

// Verify checks a signed POST as a receiver must: timestamp and signature
// are its X-Jitproxy-Timestamp and X-Jitproxy-Signature headers, body its
// body as received, key the shared secret. A timestamp more than window
// away from now (in either direction) is refused, as a replay. The error
// wraps ErrBadSignature; it never holds the key.
func Verify(key []byte, timestamp string, body []byte, signature string, now time.Time, window time.Duration) error {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q is not Unix seconds", ErrBadSignature, timestamp)
	}
	if d := now.Sub(time.Unix(sec, 0)); d > window || d < -window {
		return fmt.Errorf("%w: timestamp %s is outside the replay window of %s", ErrBadSignature, timestamp, window)
	}
	got, ok := strings.CutPrefix(signature, signaturePrefix)
	if !ok {
		return fmt.Errorf("%w: the signature is not v1=HEX", ErrBadSignature)
	}
	sum, err := hex.DecodeString(got)
	if err != nil || !hmac.Equal(sum, mac(key, timestamp, body)) {
		return ErrBadSignature
	}
	return nil
}
