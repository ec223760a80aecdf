package syslog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// facilities are the facility names Config.Facility accepts, with their
// codes from RFC 5424, section 6.2.1 (the names are syslog.conf's).
var facilities = map[string]int{
	"user":     1,
	"daemon":   3,
	"auth":     4,
	"authpriv": 10,
	"local0":   16,
	"local1":   17,
	"local2":   18,
	"local3":   19,
	"local4":   20,
	"local5":   21,
	"local6":   22,
	"local7":   23,
}

// severityInfo is the severity of every record: 6, informational.
const severityInfo = 6

// Field limits of RFC 5424, section 6.
const (
	maxHostname = 255
	maxAppName  = 48
	maxMsgID    = 32
	maxSDName   = 32
)

// message is one RFC 5424 message.
type message struct {
	Priority int
	Time     time.Time
	// The header fields: "" for NILVALUE, else PRINTUSASCII of at most
	// 255, 48, 128 and 32 bytes.
	Hostname string
	AppName  string
	ProcID   string
	MsgID    string
	// SDID names the message's one SD-ELEMENT; "" writes STRUCTURED-DATA
	// as NILVALUE.
	SDID   string
	Params []param
	Msg    []byte
}

// param is one SD-PARAM; Value is escaped when written.
type param struct{ Name, Value string }

// appendFrame appends m to b as an RFC 6587 octet-counted frame:
// MSG-LEN SP SYSLOG-MSG, with no trailer.
func appendFrame(b []byte, m *message) []byte {
	start := len(b)
	b = appendMessage(b, m)
	n := len(b) - start
	var num [20]byte
	prefix := append(strconv.AppendInt(num[:0], int64(n), 10), ' ')
	// Shift the message right and put its length in front.
	b = append(b, prefix...)
	copy(b[start+len(prefix):], b[start:start+n])
	copy(b[start:], prefix)
	return b
}

// appendMessage appends m as an RFC 5424 SYSLOG-MSG:
//
//	<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA[ MSG]
//
// The header fields must already be valid; parameter values are escaped
// here.
func appendMessage(b []byte, m *message) []byte {
	b = append(b, '<')
	b = strconv.AppendInt(b, int64(m.Priority), 10)
	b = append(b, ">1 "...)
	b = appendTimestamp(b, m.Time)
	for _, f := range []string{m.Hostname, m.AppName, m.ProcID, m.MsgID} {
		b = append(b, ' ')
		b = appendOrNil(b, f)
	}
	b = append(b, ' ')
	if m.SDID == "" {
		b = append(b, '-')
	} else {
		b = append(b, '[')
		b = append(b, m.SDID...)
		for _, p := range m.Params {
			b = append(b, ' ')
			b = append(b, p.Name...)
			b = append(b, `="`...)
			b = appendParamValue(b, p.Value)
			b = append(b, '"')
		}
		b = append(b, ']')
	}
	if len(m.Msg) > 0 {
		b = append(b, ' ')
		b = append(b, m.Msg...)
	}
	return b
}

func appendOrNil(b []byte, s string) []byte {
	if s == "" {
		return append(b, '-')
	}
	return append(b, s...)
}

// appendTimestamp writes t as RFC 5424's TIMESTAMP: RFC 3339 with six
// fraction digits (microseconds, truncated) in t's own offset, or in UTC
// where that offset is not a whole number of minutes (RFC 3339 has no
// seconds in an offset). The zero time, and a year outside 0 to 9999,
// is NILVALUE.
func appendTimestamp(b []byte, t time.Time) []byte {
	if t.IsZero() || t.Year() < 0 || t.Year() > 9999 {
		return append(b, '-')
	}
	if _, off := t.Zone(); off%60 != 0 {
		t = t.UTC()
	}
	return t.AppendFormat(b, "2006-01-02T15:04:05.000000Z07:00")
}

// appendParamValue writes s as a PARAM-VALUE: UTF-8 (each invalid byte
// replaced by U+FFFD) with '"', '\' and ']' escaped by a backslash, as
// RFC 5424, section 6.3.3 requires.
func appendParamValue(b []byte, s string) []byte {
	for len(s) > 0 {
		r, size := utf8.DecodeRuneInString(s)
		switch {
		case r == utf8.RuneError && size == 1:
			b = utf8.AppendRune(b, utf8.RuneError)
		case r == '"' || r == '\\' || r == ']':
			b = append(b, '\\', byte(r))
		default:
			b = append(b, s[:size]...)
		}
		s = s[size:]
	}
	return b
}

// printUSASCII reports whether c is PRINTUSASCII (%d33-126).
func printUSASCII(c byte) bool { return c >= 33 && c <= 126 }

// sanitizeMsgID returns typ as a MSGID: each character outside
// PRINTUSASCII replaced by '_', cut to 32 bytes; "" for an empty type
// (written as NILVALUE), and "_" for "-", which would read as NILVALUE.
func sanitizeMsgID(typ string) string {
	if typ == "-" {
		return "_"
	}
	var sb strings.Builder
	for _, r := range typ {
		if sb.Len() == maxMsgID {
			break
		}
		if r < utf8.RuneSelf && printUSASCII(byte(r)) {
			sb.WriteByte(byte(r))
		} else {
			sb.WriteByte('_')
		}
	}
	return sb.String()
}

// checkHeaderField reports whether s is 1 to max PRINTUSASCII characters.
func checkHeaderField(name, s string, max int) error {
	if s == "" || len(s) > max {
		return fmt.Errorf("%s %q: want 1 to %d printable ASCII characters", name, s, max)
	}
	for i := range len(s) {
		if !printUSASCII(s[i]) {
			return fmt.Errorf("%s %q: want printable ASCII characters only, no spaces", name, s)
		}
	}
	return nil
}

// checkSDID reports whether id is an SD-ID of the enterprise form of RFC
// 5424, section 7.2.2: NAME@NUMBER, at most 32 PRINTUSASCII characters
// other than '=', ' ', ']' and '"', the number a private enterprise number.
func checkSDID(id string) error {
	name, num, ok := strings.Cut(id, "@")
	bad := !ok || name == "" || num == "" || len(id) > maxSDName || strings.Contains(num, "@")
	for i := range len(id) {
		c := id[i]
		if !printUSASCII(c) || c == '=' || c == ']' || c == '"' {
			bad = true
		}
	}
	for i := range len(num) {
		if num[i] < '0' || num[i] > '9' {
			bad = true
		}
	}
	if bad {
		return fmt.Errorf("structured-data ID %q: want NAME@ENTERPRISENUMBER, at most 32 printable ASCII characters without '=', ']' or '\"'", id)
	}
	return nil
}

// sanitizeHostname makes h, the machine's host name, a HOSTNAME: each
// byte outside PRINTUSASCII replaced by '_', cut to 255 bytes; "" stays ""
// (NILVALUE).
func sanitizeHostname(h string) string {
	b := []byte(h)
	if len(b) > maxHostname {
		b = b[:maxHostname]
	}
	for i, c := range b {
		if !printUSASCII(c) {
			b[i] = '_'
		}
	}
	return string(b)
}
