package audit

import (
	"errors"
	"math"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Events are written as JSON by hand rather than by encoding/json, which
// reflects over every field of every event: the request path records two
// events per request. The bytes are exactly encoding/json's, with HTML
// escaping (json.Marshal) or without (an Encoder with SetEscapeHTML(false),
// as the OCSF encoder writes the native objects it carries): strings with
// U+2028 and U+2029 escaped, invalid UTF-8 replaced by U+FFFD and, with
// HTML escaping, <, > and & escaped; numbers as ES6 writes them; times as
// time.Time's MarshalJSON. TestNativeMatchesEncodingJSON, FuzzNative and
// TestAppendJSONMatchesEncodingJSON check them against encoding/json
// itself. A field added to Event, or to a type it holds, must be added
// here too: those tests fill every field by reflection and fail until it
// is.

// AppendJSON appends e to dst as one JSON object, exactly as encoding/json
// writes it: as json.Marshal does when escapeHTML is true, as an Encoder
// with SetEscapeHTML(false) does (without its newline) when it is false.
// A nil e is null. It fails, returning dst unchanged, only for a time that
// RFC 3339 cannot write (a year outside 0 to 9999, a zone offset of a day
// or more) or a duration that is not a finite number.
func (e *Event) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	if e == nil {
		return append(dst, "null"...), nil
	}
	b, err := appendEventMembers(dst, e, escapeHTML)
	if err != nil {
		return dst, err
	}
	return append(b, '}'), nil
}

// appendEventMembers appends e as a JSON object without its closing
// brace, for AppendJSON and for the native format, which adds the chain.
func appendEventMembers(b []byte, e *Event, html bool) ([]byte, error) {
	var err error
	b = append(b, `{"version":`...)
	b = AppendJSONString(b, e.Version, html)
	b = append(b, `,"id":`...)
	b = AppendJSONString(b, e.ID, html)
	b = append(b, `,"time":`...)
	if b, err = appendTime(b, e.Time); err != nil {
		return nil, err
	}
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, e.Type, html)
	b = appendStringOmitEmpty(b, `,"request_id":`, e.RequestID, html)
	if c := e.Caller; c != nil {
		b = appendCaller(append(b, `,"caller":`...), c, html)
	}
	if a := e.Actor; a != nil {
		b = append(b, `,"actor":{"name":`...)
		b = AppendJSONString(b, a.Name, html)
		b = appendStringsOmitEmpty(b, `,"groups":`, a.Groups, html)
		b = appendStringOmitEmpty(b, `,"session":`, a.Session, html)
		b = appendStringOmitEmpty(b, `,"agent":`, a.Agent, html)
		b = appendStringOmitEmpty(b, `,"auth_method":`, a.AuthMethod, html)
		b = appendStringOmitEmpty(b, `,"identity":`, a.Identity, html)
		b = append(b, '}')
	}
	if a := e.Action; a != nil {
		b = appendAction(append(b, `,"action":`...), a, html)
	}
	if d := e.Decision; d != nil {
		b = d.AppendJSON(append(b, `,"decision":`...), html)
	}
	if g := e.Grant; g != nil {
		if b, err = appendGrant(append(b, `,"grant":`...), g, html); err != nil {
			return nil, err
		}
	}
	if s := e.Session; s != nil {
		b = append(b, `,"session":{"id":`...)
		b = AppendJSONString(b, s.ID, html)
		b = append(b, `,"agent":`...)
		b = AppendJSONString(b, s.Agent, html)
		b = append(b, `,"user":`...)
		b = AppendJSONString(b, s.User, html)
		b = appendStringsOmitEmpty(b, `,"groups":`, s.Groups, html)
		if b, err = appendTimeOmitZero(b, `,"expires_at":`, s.ExpiresAt); err != nil {
			return nil, err
		}
		b = append(b, '}')
	}
	if c := e.Credential; c != nil {
		if b, err = appendCredential(append(b, `,"credential":`...), c, html); err != nil {
			return nil, err
		}
	}
	if a := e.Admin; a != nil {
		b = a.AppendJSON(append(b, `,"admin":`...), html)
	}
	if l := e.Lock; l != nil {
		if b, err = appendLock(append(b, `,"lock":`...), l, html); err != nil {
			return nil, err
		}
	}
	if p := e.Policies; p != nil {
		b = p.AppendJSON(append(b, `,"policies":`...), html)
	}
	if o := e.Outcome; o != nil {
		b = append(b, `,"outcome":{"status":`...)
		b = strconv.AppendInt(b, int64(o.Status), 10)
		if o.Bytes != 0 {
			b = append(b, `,"bytes":`...)
			b = strconv.AppendInt(b, o.Bytes, 10)
		}
		b = appendStringOmitEmpty(b, `,"error":`, o.Error, html)
		b = append(b, '}')
	}
	if e.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		if b, err = appendFloat(b, e.DurationMS); err != nil {
			return nil, err
		}
	}
	return b, nil
}

func appendCaller(b []byte, c *access.Caller, html bool) []byte {
	b = append(b, `{"session":`...)
	b = AppendJSONString(b, c.Session, html)
	b = append(b, `,"agent":`...)
	b = AppendJSONString(b, c.Agent, html)
	b = append(b, `,"user":`...)
	b = AppendJSONString(b, c.User, html)
	b = appendStringsOmitEmpty(b, `,"groups":`, c.Groups, html)
	b = appendStringOmitEmpty(b, `,"auth_method":`, c.AuthMethod, html)
	b = appendStringOmitEmpty(b, `,"source_address":`, c.SourceAddr, html)
	return append(b, '}')
}

func appendAction(b []byte, a *access.Action, html bool) []byte {
	b = append(b, `{"kind":`...)
	b = AppendJSONString(b, a.Kind, html)
	b = append(b, `,"target":`...)
	b = AppendJSONString(b, a.Target, html)
	b = append(b, `,"method":`...)
	b = AppendJSONString(b, a.Method, html)
	b = append(b, `,"path":`...)
	b = AppendJSONString(b, a.Path, html)
	if k := a.Kubernetes; k != nil {
		b = append(b, `,"kubernetes":{"verb":`...)
		b = AppendJSONString(b, k.Verb, html)
		b = append(b, `,"resource_request":`...)
		b = strconv.AppendBool(b, k.ResourceRequest)
		b = append(b, `,"api_group":`...)
		b = AppendJSONString(b, k.APIGroup, html)
		b = append(b, `,"api_version":`...)
		b = AppendJSONString(b, k.APIVersion, html)
		b = append(b, `,"resource":`...)
		b = AppendJSONString(b, k.Resource, html)
		b = append(b, `,"subresource":`...)
		b = AppendJSONString(b, k.Subresource, html)
		b = append(b, `,"namespace":`...)
		b = AppendJSONString(b, k.Namespace, html)
		b = append(b, `,"name":`...)
		b = AppendJSONString(b, k.Name, html)
		b = append(b, '}')
	}
	if w := a.AWS; w != nil {
		b = append(b, `,"aws":{"service":`...)
		b = AppendJSONString(b, w.Service, html)
		b = append(b, `,"action":`...)
		b = AppendJSONString(b, w.Action, html)
		b = append(b, `,"region":`...)
		b = AppendJSONString(b, w.Region, html)
		b = append(b, `,"account":`...)
		b = AppendJSONString(b, w.Account, html)
		b = append(b, `,"resources":`...)
		b = AppendJSONStrings(b, w.Resources, html)
		b = append(b, '}')
	}
	return append(b, '}')
}

// AppendJSON appends d to dst as encoding/json writes it, with HTML
// escaping or without, as Event.AppendJSON does. A nil d is null.
func (d *Decision) AppendJSON(dst []byte, escapeHTML bool) []byte {
	if d == nil {
		return append(dst, "null"...)
	}
	b := append(dst, `{"allowed":`...)
	b = strconv.AppendBool(b, d.Allowed)
	b = appendStringsOmitEmpty(b, `,"reasons":`, d.Reasons, escapeHTML)
	b = appendStringsOmitEmpty(b, `,"policies":`, d.Policies, escapeHTML)
	return append(b, '}')
}

// AppendJSON appends g to dst as encoding/json writes it, with HTML
// escaping or without, as Event.AppendJSON does. A nil g is null. It
// fails, returning dst unchanged, only for an ExpiresAt that RFC 3339
// cannot write.
func (g *Grant) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	if g == nil {
		return append(dst, "null"...), nil
	}
	b, err := appendGrant(dst, g, escapeHTML)
	if err != nil {
		return dst, err
	}
	return b, nil
}

func appendGrant(b []byte, g *Grant, html bool) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, g.ID, html)
	b = appendStringOmitEmpty(b, `,"policy":`, g.Policy, html)
	b = appendStringOmitEmpty(b, `,"policy_version":`, g.Version, html)
	b = appendStringOmitEmpty(b, `,"state":`, g.State, html)
	b = appendStringOmitEmpty(b, `,"user":`, g.User, html)
	b = appendStringOmitEmpty(b, `,"session":`, g.Session, html)
	b = appendStringOmitEmpty(b, `,"target":`, g.Target, html)
	b = appendStringOmitEmpty(b, `,"namespace":`, g.Namespace, html)
	b = appendStringOmitEmpty(b, `,"reason":`, g.Reason, html)
	b = appendStringsOmitEmpty(b, `,"approvers":`, g.Approvers, html)
	b, err := appendTimeOmitZero(b, `,"expires_at":`, g.ExpiresAt)
	if err != nil {
		return nil, err
	}
	b = appendStringOmitEmpty(b, `,"end_reason":`, g.EndReason, html)
	b = appendStringOmitEmpty(b, `,"suspended":`, g.Suspended, html)
	if g.Learning {
		b = append(b, `,"learning":true`...)
	}
	return append(b, '}'), nil
}

// AppendJSON appends l to dst as encoding/json writes it, with HTML
// characters escaped or not; nil is null. It returns an error, and dst as
// it got it, only for a time encoding/json cannot write either.
func (l *Lock) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	if l == nil {
		return append(dst, "null"...), nil
	}
	b, err := appendLock(dst, l, escapeHTML)
	if err != nil {
		return dst, err
	}
	return b, nil
}

func appendLock(b []byte, l *Lock, html bool) ([]byte, error) {
	b = append(b, `{"id":`...)
	b = AppendJSONString(b, l.ID, html)
	b = appendStringOmitEmpty(b, `,"user":`, l.User, html)
	b = appendStringOmitEmpty(b, `,"agent":`, l.Agent, html)
	b = appendStringOmitEmpty(b, `,"session":`, l.Session, html)
	b = appendStringOmitEmpty(b, `,"policy":`, l.Policy, html)
	b = appendStringOmitEmpty(b, `,"reason":`, l.Reason, html)
	b, err := appendTimeOmitZero(b, `,"expires_at":`, l.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// AppendJSON appends c to dst as encoding/json writes it, with HTML
// escaping or without, as Event.AppendJSON does. A nil c is null. It
// fails, returning dst unchanged, only for an ExpiresAt that RFC 3339
// cannot write.
func (c *Credential) AppendJSON(dst []byte, escapeHTML bool) ([]byte, error) {
	if c == nil {
		return append(dst, "null"...), nil
	}
	b, err := appendCredential(dst, c, escapeHTML)
	if err != nil {
		return dst, err
	}
	return b, nil
}

func appendCredential(b []byte, c *Credential, html bool) ([]byte, error) {
	b = append(b, `{"provider":`...)
	b = AppendJSONString(b, c.Provider, html)
	b = appendStringOmitEmpty(b, `,"target":`, c.Target, html)
	b = appendStringOmitEmpty(b, `,"subject":`, c.Subject, html)
	b, err := appendTimeOmitZero(b, `,"expires_at":`, c.ExpiresAt)
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// AppendJSON appends a to dst as encoding/json writes it, with HTML
// escaping or without, as Event.AppendJSON does. A nil a is null.
func (a *AdminCall) AppendJSON(dst []byte, escapeHTML bool) []byte {
	if a == nil {
		return append(dst, "null"...)
	}
	b := append(dst, `{"operation":`...)
	b = AppendJSONString(b, a.Operation, escapeHTML)
	b = append(b, `,"path":`...)
	b = AppendJSONString(b, a.Path, escapeHTML)
	b = appendStringOmitEmpty(b, `,"source_address":`, a.SourceAddr, escapeHTML)
	return append(b, '}')
}

// AppendJSON appends p to dst as encoding/json writes it, with HTML
// escaping or without, as Event.AppendJSON does. A nil p is null, and so
// is a nil Access.
func (p *PolicySet) AppendJSON(dst []byte, escapeHTML bool) []byte {
	if p == nil {
		return append(dst, "null"...)
	}
	b := append(dst, `{"access":`...)
	if p.Access == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, v := range p.Access {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = AppendJSONString(b, v.Name, escapeHTML)
			b = append(b, `,"version":`...)
			b = AppendJSONString(b, v.Version, escapeHTML)
			b = append(b, `,"target":`...)
			b = AppendJSONString(b, v.Target, escapeHTML)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = append(b, `,"authz_digest":`...)
	b = AppendJSONString(b, p.AuthzDigest, escapeHTML)
	b = append(b, `,"authz_source":`...)
	b = AppendJSONString(b, p.AuthzSource, escapeHTML)
	b = append(b, `,"access_source":`...)
	b = AppendJSONString(b, p.AccessSource, escapeHTML)
	b = appendStringOmitEmpty(b, `,"trigger":`, p.Trigger, escapeHTML)
	return append(b, '}')
}

// appendStringOmitEmpty appends key and s unless s is empty (omitempty).
func appendStringOmitEmpty(b []byte, key, s string, html bool) []byte {
	if s == "" {
		return b
	}
	return AppendJSONString(append(b, key...), s, html)
}

// appendStringsOmitEmpty appends key and ss unless ss is empty (omitempty).
func appendStringsOmitEmpty(b []byte, key string, ss []string, html bool) []byte {
	if len(ss) == 0 {
		return b
	}
	return AppendJSONStrings(append(b, key...), ss, html)
}

// AppendJSONStrings appends ss to dst as a JSON array of strings, each as
// AppendJSONString writes it; a nil ss is null, as encoding/json writes a
// nil slice, and an empty one [].
func AppendJSONStrings(dst []byte, ss []string, escapeHTML bool) []byte {
	if ss == nil {
		return append(dst, "null"...)
	}
	b := append(dst, '[')
	for i, s := range ss {
		if i > 0 {
			b = append(b, ',')
		}
		b = AppendJSONString(b, s, escapeHTML)
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

// asciiSafe tells the ASCII characters a JSON string holds as they are,
// without HTML escaping ([0]) and with it ([1]), as encoding/json's
// safeSet and htmlSafeSet do. It is read only.
var asciiSafe = func() (safe [2][utf8.RuneSelf]bool) {
	for c := byte(0x20); c < utf8.RuneSelf; c++ {
		safe[0][c] = c != '"' && c != '\\'
		safe[1][c] = safe[0][c] && c != '<' && c != '>' && c != '&'
	}
	return safe
}()

// AppendJSONString appends s to dst as a JSON string, exactly as
// encoding/json writes it: ", \ and control characters escaped (\b, \f,
// \n, \r, \t, else \u00XX), U+2028 and U+2029 escaped, each byte of
// invalid UTF-8 as \ufffd, and, when escapeHTML is true (json.Marshal's
// default, Encoder.SetEscapeHTML's argument), <, > and & as \u003c, \u003e
// and \u0026.
func AppendJSONString(dst []byte, s string, escapeHTML bool) []byte {
	safe := &asciiSafe[0]
	if escapeHTML {
		safe = &asciiSafe[1]
	}
	b := append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if safe[c] {
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
