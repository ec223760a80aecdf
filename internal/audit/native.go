package audit

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/access"
)

// The native format is written by hand rather than by encoding/json, which
// reflects over every field of every event: the request path records two
// events per request. The bytes are exactly encoding/json's (json.Marshal
// of the Event with seq, prev_hash and hash after it: strings with <, >, &,
// U+2028 and U+2029 escaped and invalid UTF-8 replaced by U+FFFD, numbers
// as ES6 writes them, times as time.Time's MarshalJSON), which
// TestNativeMatchesEncodingJSON and FuzzNative check against json.Marshal
// itself. A field added to Event, or to a type it holds, must be added
// here too: TestNativeMatchesEncodingJSON fills every field by reflection
// and fails until it is.

// EncodeNative is the native format, jitproxy.audit/v1, into a new slice:
// see AppendNative.
func EncodeNative(e Event, c Chain) ([]byte, error) {
	return AppendNative(make([]byte, 0, 1024), e, c)
}

// AppendNative is the Encoder of the native format, jitproxy.audit/v1: it
// appends the Event as one JSON object, followed by seq, prev_hash and an
// empty hash, to dst. It fails, returning dst unchanged, only for a time
// that RFC 3339 cannot write (a year outside 0 to 9999) or a duration that
// is not a finite number.
func AppendNative(dst []byte, e Event, c Chain) ([]byte, error) {
	b, err := appendNative(dst, &e, c)
	if err != nil {
		return dst, fmt.Errorf("encode audit event: %w", err)
	}
	return b, nil
}

func appendNative(b []byte, e *Event, c Chain) ([]byte, error) {
	var err error
	b = append(b, `{"version":`...)
	b = appendString(b, e.Version)
	b = append(b, `,"id":`...)
	b = appendString(b, e.ID)
	b = append(b, `,"time":`...)
	if b, err = appendTime(b, e.Time); err != nil {
		return nil, err
	}
	b = append(b, `,"type":`...)
	b = appendString(b, e.Type)
	if e.RequestID != "" {
		b = append(b, `,"request_id":`...)
		b = appendString(b, e.RequestID)
	}
	if c := e.Caller; c != nil {
		b = append(b, `,"caller":{"session":`...)
		b = appendString(b, c.Session)
		b = append(b, `,"agent":`...)
		b = appendString(b, c.Agent)
		b = append(b, `,"user":`...)
		b = appendString(b, c.User)
		b = appendStringsOmitEmpty(b, `,"groups":`, c.Groups)
		b = appendStringOmitEmpty(b, `,"auth_method":`, c.AuthMethod)
		b = appendStringOmitEmpty(b, `,"source_address":`, c.SourceAddr)
		b = append(b, '}')
	}
	if a := e.Actor; a != nil {
		b = append(b, `,"actor":{"name":`...)
		b = appendString(b, a.Name)
		b = appendStringsOmitEmpty(b, `,"groups":`, a.Groups)
		b = appendStringOmitEmpty(b, `,"session":`, a.Session)
		b = appendStringOmitEmpty(b, `,"agent":`, a.Agent)
		b = append(b, '}')
	}
	if a := e.Action; a != nil {
		b = appendAction(b, a)
	}
	if d := e.Decision; d != nil {
		b = append(b, `,"decision":{"allowed":`...)
		b = strconv.AppendBool(b, d.Allowed)
		b = appendStringsOmitEmpty(b, `,"reasons":`, d.Reasons)
		b = appendStringsOmitEmpty(b, `,"policies":`, d.Policies)
		b = append(b, '}')
	}
	if g := e.Grant; g != nil {
		if b, err = appendGrant(b, g); err != nil {
			return nil, err
		}
	}
	if s := e.Session; s != nil {
		b = append(b, `,"session":{"id":`...)
		b = appendString(b, s.ID)
		b = append(b, `,"agent":`...)
		b = appendString(b, s.Agent)
		b = append(b, `,"user":`...)
		b = appendString(b, s.User)
		b = appendStringsOmitEmpty(b, `,"groups":`, s.Groups)
		if b, err = appendTimeOmitZero(b, `,"expires_at":`, s.ExpiresAt); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	if c := e.Credential; c != nil {
		b = append(b, `,"credential":{"provider":`...)
		b = appendString(b, c.Provider)
		b = appendStringOmitEmpty(b, `,"target":`, c.Target)
		b = appendStringOmitEmpty(b, `,"subject":`, c.Subject)
		if b, err = appendTimeOmitZero(b, `,"expires_at":`, c.ExpiresAt); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	if a := e.Admin; a != nil {
		b = append(b, `,"admin":{"operation":`...)
		b = appendString(b, a.Operation)
		b = append(b, `,"path":`...)
		b = appendString(b, a.Path)
		b = appendStringOmitEmpty(b, `,"source_address":`, a.SourceAddr)
		b = append(b, '}')
	}
	if p := e.Policies; p != nil {
		b = append(b, `,"policies":{"access":`...)
		if p.Access == nil {
			b = append(b, "null"...)
		} else {
			b = append(b, '[')
			for i, v := range p.Access {
				if i > 0 {
					b = append(b, ',')
				}
				b = append(b, `{"name":`...)
				b = appendString(b, v.Name)
				b = append(b, `,"version":`...)
				b = appendString(b, v.Version)
				b = append(b, `,"target":`...)
				b = appendString(b, v.Target)
				b = append(b, '}')
			}
			b = append(b, ']')
		}
		b = append(b, `,"authz_digest":`...)
		b = appendString(b, p.AuthzDigest)
		b = append(b, `,"authz_source":`...)
		b = appendString(b, p.AuthzSource)
		b = append(b, `,"access_source":`...)
		b = appendString(b, p.AccessSource)
		b = append(b, '}')
	}
	if o := e.Outcome; o != nil {
		b = append(b, `,"outcome":{"status":`...)
		b = strconv.AppendInt(b, int64(o.Status), 10)
		if o.Bytes != 0 {
			b = append(b, `,"bytes":`...)
			b = strconv.AppendInt(b, o.Bytes, 10)
		}
		b = appendStringOmitEmpty(b, `,"error":`, o.Error)
		b = append(b, '}')
	}
	if e.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		if b, err = appendFloat(b, e.DurationMS); err != nil {
			return nil, err
		}
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"prev_hash":`...)
	b = appendString(b, c.Prev)
	b = append(b, `,"hash":""}`...)
	return b, nil
}

func appendAction(b []byte, a *access.Action) []byte {
	b = append(b, `,"action":{"kind":`...)
	b = appendString(b, a.Kind)
	b = append(b, `,"target":`...)
	b = appendString(b, a.Target)
	b = append(b, `,"method":`...)
	b = appendString(b, a.Method)
	b = append(b, `,"path":`...)
	b = appendString(b, a.Path)
	if k := a.Kubernetes; k != nil {
		b = append(b, `,"kubernetes":{"verb":`...)
		b = appendString(b, k.Verb)
		b = append(b, `,"resource_request":`...)
		b = strconv.AppendBool(b, k.ResourceRequest)
		b = append(b, `,"api_group":`...)
		b = appendString(b, k.APIGroup)
		b = append(b, `,"api_version":`...)
		b = appendString(b, k.APIVersion)
		b = append(b, `,"resource":`...)
		b = appendString(b, k.Resource)
		b = append(b, `,"subresource":`...)
		b = appendString(b, k.Subresource)
		b = append(b, `,"namespace":`...)
		b = appendString(b, k.Namespace)
		b = append(b, `,"name":`...)
		b = appendString(b, k.Name)
		b = append(b, '}')
	}
	if w := a.AWS; w != nil {
		b = append(b, `,"aws":{"service":`...)
		b = appendString(b, w.Service)
		b = append(b, `,"action":`...)
		b = appendString(b, w.Action)
		b = append(b, `,"region":`...)
		b = appendString(b, w.Region)
		b = append(b, `,"account":`...)
		b = appendString(b, w.Account)
		b = append(b, `,"resources":`...)
		b = appendStrings(b, w.Resources)
		b = append(b, '}')
	}
	return append(b, '}')
}

func appendGrant(b []byte, g *Grant) ([]byte, error) {
	b = append(b, `,"grant":{"id":`...)
	b = appendString(b, g.ID)
	b = appendStringOmitEmpty(b, `,"policy":`, g.Policy)
	b = appendStringOmitEmpty(b, `,"policy_version":`, g.Version)
	b = appendStringOmitEmpty(b, `,"state":`, g.State)
	b = appendStringOmitEmpty(b, `,"user":`, g.User)
	b = appendStringOmitEmpty(b, `,"session":`, g.Session)
	b = appendStringOmitEmpty(b, `,"target":`, g.Target)
	b = appendStringOmitEmpty(b, `,"namespace":`, g.Namespace)
	b = appendStringOmitEmpty(b, `,"reason":`, g.Reason)
	b = appendStringsOmitEmpty(b, `,"approvers":`, g.Approvers)
	b, err := appendTimeOmitZero(b, `,"expires_at":`, g.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// appendStringOmitEmpty appends key and s unless s is empty (omitempty).
func appendStringOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(append(b, key...), s)
}

// appendStringsOmitEmpty appends key and ss unless ss is empty (omitempty).
func appendStringsOmitEmpty(b []byte, key string, ss []string) []byte {
	if len(ss) == 0 {
		return b
	}
	return appendStrings(append(b, key...), ss)
}

// appendStrings appends ss as a JSON array; nil is null, as encoding/json
// writes a nil slice.
func appendStrings(b []byte, ss []string) []byte {
	if ss == nil {
		return append(b, "null"...)
	}
	b = append(b, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, s)
	}
	return append(b, ']')
}

// appendTimeOmitZero appends key and t unless t is zero (omitzero).
func appendTimeOmitZero(b []byte, key string, t time.Time) ([]byte, error) {
	if t.IsZero() {
		return b, nil
	}
	return appendTime(append(b, key...), t)
}

// appendTime appends t as time.Time's MarshalJSON writes it: RFC 3339
// with nanoseconds, quoted.
func appendTime(b []byte, t time.Time) ([]byte, error) {
	b = append(b, '"')
	b, err := t.AppendText(b)
	if err != nil {
		return nil, err
	}
	return append(b, '"'), nil
}

// appendFloat appends f as encoding/json writes a float64: as ES6 writes a
// number, without exponent from 1e-6 to 1e21.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return nil, errors.New("duration_ms: " + strconv.FormatFloat(f, 'g', -1, 64) + " is not a JSON number")
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-09 is written e-9.
		if n := len(b); n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b, nil
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string as encoding/json writes it with
// HTML escaping (json.Marshal's default): ", \ and control characters
// escaped, <, > and & as \u003c, \u003e and \u0026, U+2028 and U+2029
// escaped, and each byte of invalid UTF-8 as \ufffd.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
