package audit

import (
	"fmt"
	"strconv"
)

// EncodeNative is the native format, jitproxy.audit/v1, into a new slice:
// see AppendNative.
func EncodeNative(e Event, c Chain) ([]byte, error) {
	return AppendNative(make([]byte, 0, 1024), e, c)
}

// AppendNative is the Encoder of the native format, jitproxy.audit/v1: it
// appends the Event as one JSON object, followed by seq, prev_hash and an
// empty hash, to dst, exactly as json.Marshal writes it (see
// Event.AppendJSON). It fails, returning dst unchanged, only for a time
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
	b, err := appendEventMembers(b, e, true)
	if err != nil {
		return nil, err
	}
	b = append(b, `,"seq":`...)
	b = strconv.AppendUint(b, c.Seq, 10)
	b = append(b, `,"prev_hash":`...)
	b = AppendJSONString(b, c.Prev, true)
	b = append(b, `,"hash":""}`...)
	return b, nil
}
