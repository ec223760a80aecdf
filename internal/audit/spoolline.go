package audit

import (
	"bytes"
	"strconv"
	"time"
)

// appendSpoolLine appends a record's line in the spool to b: the JSON
// object of a spoolLine, with data (an encoding whose hash placeholder is
// at i) sealed with the hash sum as it is, then a newline. It writes what
// json.Marshal of the spoolLine would, except that data is not re-encoded:
// json.Marshal would escape <, > and & in an encoding that does not (OCSF),
// and the record's hash would no longer match it. It fails only for a time
// RFC 3339 cannot write.
func appendSpoolLine(b []byte, seq uint64, id, typ string, t time.Time, data []byte, i int, sum []byte) ([]byte, error) {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	b = append(b, `,"id":`...)
	b = AppendJSONString(b, id, true)
	b = append(b, `,"type":`...)
	b = AppendJSONString(b, typ, true)
	b = append(b, `,"time":`...)
	b, err := appendTime(b, t)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"hash":"`...)
	b = append(b, sum...)
	b = append(b, `","data":`...)
	b = appendSealed(b, data, i, sum)
	return append(b, "}\n"...), nil
}

// scanSpoolLine reads line, without its newline, as appendSpoolLine writes
// it (and json.Marshal of a spoolLine did): its members in that order,
// data last. Data is a slice of line, not checked to be JSON; the hash is
// not read (delivery does not need it). ok is false for a line in another
// shape, or whose ID, type or time holds an escape: json.Unmarshal reads
// those.
func scanSpoolLine(line []byte) (l spoolLine, ok bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	n := 0
	for n < len(rest) && n < 19 && '0' <= rest[n] && rest[n] <= '9' {
		l.Seq = l.Seq*10 + uint64(rest[n]-'0')
		n++
	}
	if !ok || n == 0 || (n > 1 && rest[0] == '0') {
		return l, false
	}
	id, rest, ok1 := cutString(rest[n:], `,"id":`)
	typ, rest, ok2 := cutString(rest, `,"type":`)
	t, rest, ok3 := cutString(rest, `,"time":`)
	_, rest, ok4 := cutString(rest, `,"hash":`)
	data, ok5 := bytes.CutPrefix(rest, []byte(`,"data":`))
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 || len(data) < 2 || data[len(data)-1] != '}' {
		return l, false
	}
	if err := l.Time.UnmarshalText(t); err != nil {
		return l, false
	}
	l.ID, l.Type, l.Data = string(id), eventType(typ), data[:len(data)-1]
	return l, true
}

// cutString cuts key and then a JSON string without escapes off the
// start of b, and returns the string's contents and the rest of b.
func cutString(b []byte, key string) (s, rest []byte, ok bool) {
	b, ok = bytes.CutPrefix(b, []byte(key))
	if !ok || len(b) == 0 || b[0] != '"' {
		return nil, nil, false
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || bytes.IndexByte(b[1:1+end], '\\') >= 0 {
		return nil, nil, false
	}
	return b[1 : 1+end], b[1+end+1:], true
}

// eventType returns typ as a string, the constant's for the types
// jitproxy records (no allocation per record).
func eventType(typ []byte) string {
	switch string(typ) {
	case TypeRequest:
		return TypeRequest
	case TypeRequestDecided:
		return TypeRequestDecided
	case TypeSessionCreated:
		return TypeSessionCreated
	case TypeSessionEnded:
		return TypeSessionEnded
	case TypeGrantRequested:
		return TypeGrantRequested
	case TypeGrantApproved:
		return TypeGrantApproved
	case TypeGrantActivated:
		return TypeGrantActivated
	case TypeGrantDenied:
		return TypeGrantDenied
	case TypeGrantRevoked:
		return TypeGrantRevoked
	case TypeGrantExpired:
		return TypeGrantExpired
	case TypeGrantSuspended:
		return TypeGrantSuspended
	case TypeGrantResumed:
		return TypeGrantResumed
	case TypeCredentialMinted:
		return TypeCredentialMinted
	case TypeCredentialReleased:
		return TypeCredentialReleased
	case TypeAdminRequest:
		return TypeAdminRequest
	case TypePolicyLoaded:
		return TypePolicyLoaded
	case TypePolicyRejected:
		return TypePolicyRejected
	}
	return string(typ)
}
