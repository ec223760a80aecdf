package audit

import (
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
	b = appendString(b, id)
	b = append(b, `,"type":`...)
	b = appendString(b, typ)
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
