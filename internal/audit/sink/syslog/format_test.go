package syslog

import (
	"bytes"
	stdcmp "cmp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	gosyslog "github.com/leodido/go-syslog/v4"
	"github.com/leodido/go-syslog/v4/octetcounting"
	"github.com/leodido/go-syslog/v4/rfc5424"
)

const bom = "\xef\xbb\xbf"

// TestAppendMessageRFCExamples writes the examples of RFC 5424, section
// 6.5, that fit one SD element, and wants them byte for byte. Example 1
// has a timestamp with three fraction digits; this formatter always writes
// six, which TIME-SECFRAC allows, so its expected text has six.
func TestAppendMessageRFCExamples(t *testing.T) {
	for _, tt := range []struct {
		name string
		m    message
		want string
	}{
		{
			name: "example 1, no structured data",
			m: message{
				Priority: 34, Time: time.Date(2003, 10, 11, 22, 14, 15, 3_000_000, time.UTC),
				Hostname: "mymachine.example.com", AppName: "su", MsgID: "ID47",
				Msg: []byte(bom + "'su root' failed for lonvick on /dev/pts/8"),
			},
			want: "<34>1 2003-10-11T22:14:15.003000Z mymachine.example.com su - ID47 - " + bom + "'su root' failed for lonvick on /dev/pts/8",
		},
		{
			name: "example 2, an offset and microseconds",
			m: message{
				Priority: 165, Time: time.Date(2003, 8, 24, 5, 14, 15, 3_000, time.FixedZone("", -7*3600)),
				Hostname: "192.0.2.1", AppName: "myproc", ProcID: "8710",
				Msg: []byte("%% It's time to make the do-nuts."),
			},
			want: "<165>1 2003-08-24T05:14:15.000003-07:00 192.0.2.1 myproc 8710 - - %% It's time to make the do-nuts.",
		},
		{
			name: "example 3, structured data",
			m: message{
				Priority: 165, Time: time.Date(2003, 10, 11, 22, 14, 15, 3_000_000, time.UTC),
				Hostname: "mymachine.example.com", AppName: "evntslog", MsgID: "ID47",
				SDID:   "exampleSDID@32473",
				Params: []param{{"iut", "3"}, {"eventSource", "Application"}, {"eventID", "1011"}},
				Msg:    []byte(bom + "An application event log entry..."),
			},
			want: `<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 [exampleSDID@32473 iut="3" eventSource="Application" eventID="1011"] ` + bom + "An application event log entry...",
		},
		{
			name: "example 4, no MSG",
			m: message{
				Priority: 165, Time: time.Date(2003, 10, 11, 22, 14, 15, 3_000_000, time.UTC),
				Hostname: "mymachine.example.com", AppName: "evntslog", MsgID: "ID47",
				SDID:   "examplePriority@32473",
				Params: []param{{"class", "high"}},
			},
			want: `<165>1 2003-10-11T22:14:15.003000Z mymachine.example.com evntslog - ID47 [examplePriority@32473 class="high"]`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := string(appendMessage(nil, &tt.m))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			parse(t, []byte(got))
		})
	}
}

// TestAppendFrame checks the octet-counted framing of RFC 6587, section
// 3.4.1: the length counts octets, not characters, and nothing follows.
func TestAppendFrame(t *testing.T) {
	m := message{Priority: 38, Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Hostname: "h", AppName: "a", MsgID: "grant.approved", SDID: DefaultStructuredDataID,
		Params: []param{{"id", "e1"}, {"seq", "1"}}, Msg: []byte(`{"reason":"grüße ✓"}`)}
	msg := appendMessage(nil, &m)
	got := appendFrame([]byte("before|"), &m)
	want := "before|" + strconv.Itoa(len(msg)) + " " + string(msg)
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("frame (-want +got):\n%s", diff)
	}
	if len(msg) == utf8.RuneCount(msg) {
		t.Fatal("the test message should hold multi-byte characters")
	}
}

// TestRecordMessage writes records as Deliver does and checks each field
// with a strict RFC 5424 parser.
func TestRecordMessage(t *testing.T) {
	at := time.Date(2026, 11, 25, 10, 0, 0, 123456789, time.UTC)
	for _, tt := range []struct {
		name      string
		typ, id   string
		data      string
		wantMsgID string // "" for NILVALUE
		wantID    string // as the parser unescapes it
		wantSD    string // the element as written
	}{
		{
			name: "plain", typ: "grant.approved", id: "0123abcd", data: `{"type":"grant.approved"}`,
			wantMsgID: "grant.approved", wantID: "0123abcd", wantSD: `[jitproxy@32473 id="0123abcd" seq="42"]`,
		},
		{
			name: "escapes in the id", typ: "request", id: `a"b\c]d`, data: `{}`,
			wantMsgID: "request", wantID: `a"b\c]d`, wantSD: `[jitproxy@32473 id="a\"b\\c\]d" seq="42"]`,
		},
		{
			name: "an opening bracket and an equals sign need no escape", typ: "request", id: `[x=y`, data: `{}`,
			wantMsgID: "request", wantID: `[x=y`, wantSD: `[jitproxy@32473 id="[x=y" seq="42"]`,
		},
		{
			name: "invalid UTF-8 in the id", typ: "request", id: "a\xffb", data: `{}`,
			wantMsgID: "request", wantID: "a\uFFFDb", wantSD: "[jitproxy@32473 id=\"a\uFFFDb\" seq=\"42\"]",
		},
		{
			name: "spaces and non-ASCII in the type", typ: "grant approved ✓", id: "x", data: `{}`,
			wantMsgID: "grant_approved__", wantID: "x", wantSD: `[jitproxy@32473 id="x" seq="42"]`,
		},
		{
			name: "a long type is cut to 32", typ: strings.Repeat("t", 40), id: "x", data: `{}`,
			wantMsgID: strings.Repeat("t", 32), wantID: "x", wantSD: `[jitproxy@32473 id="x" seq="42"]`,
		},
		{
			name: "a type that would read as NILVALUE", typ: "-", id: "x", data: `{}`,
			wantMsgID: "_", wantID: "x", wantSD: `[jitproxy@32473 id="x" seq="42"]`,
		},
		{
			name: "no type", typ: "", id: "x", data: `{}`,
			wantMsgID: "", wantID: "x", wantSD: `[jitproxy@32473 id="x" seq="42"]`,
		},
		{
			name: "non-ASCII data is sent as is", typ: "request", id: "x", data: `{"reasons":["grüße ✓","日本"],"q":"a]\"b\\"}`,
			wantMsgID: "request", wantID: "x", wantSD: `[jitproxy@32473 id="x" seq="42"]`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := message{
				Priority: 38, Time: at, Hostname: "proxy-0.example", AppName: "jitproxy",
				MsgID: sanitizeMsgID(tt.typ), SDID: DefaultStructuredDataID,
				Params: []param{{"id", tt.id}, {"seq", "42"}}, Msg: []byte(tt.data),
			}
			raw := appendMessage(nil, &m)
			wantRaw := "<38>1 2026-11-25T10:00:00.123456Z proxy-0.example jitproxy - " + stdcmp.Or(tt.wantMsgID, "-") + " " + tt.wantSD + " " + tt.data
			if diff := cmp.Diff(wantRaw, string(raw)); diff != "" {
				t.Errorf("message (-want +got):\n%s", diff)
			}
			got := parse(t, raw)
			want := parsed{
				Priority: 38, Facility: 4, Severity: 6, Version: 1,
				Timestamp: at.Truncate(time.Microsecond), Hostname: "proxy-0.example", AppName: "jitproxy",
				MsgID: tt.wantMsgID, SD: map[string]map[string]string{"jitproxy@32473": {"id": tt.wantID, "seq": "42"}},
				Message: tt.data,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("parsed (-want +got):\n%s", diff)
			}
		})
	}
}

func TestTimestamp(t *testing.T) {
	for _, tt := range []struct {
		name string
		t    time.Time
		want string
	}{
		{"whole second keeps six digits", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05.000000Z"},
		{"nanoseconds are truncated", time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2026-01-02T03:04:05.999999Z"},
		{"an offset is kept", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 5*3600+30*60)), "2026-01-02T03:04:05.000000+05:30"},
		{"an offset with seconds becomes UTC", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", 561)), "2026-01-02T02:54:44.000000Z"},
		{"zero is NILVALUE", time.Time{}, "-"},
		{"a five-digit year is NILVALUE", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), "-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(appendTimestamp(nil, tt.t)); got != tt.want {
				t.Errorf("appendTimestamp(%v) = %q, want %q", tt.t, got, tt.want)
			}
		})
	}
}

func TestCheckSDID(t *testing.T) {
	for _, tt := range []struct {
		id string
		ok bool
	}{
		{"jitproxy@32473", true},
		{"audit@1.3.6", false}, // the number is digits only
		{"jitproxy", false},    // names without @ are IANA's
		{"@32473", false},
		{"jitproxy@", false},
		{"a@b@1", false},
		{"jit proxy@1", false},
		{"jit=proxy@1", false},
		{`jit"proxy@1`, false},
		{"jit]proxy@1", false},
		{strings.Repeat("a", 26) + "@12345", true},
		{strings.Repeat("a", 27) + "@12345", false},
	} {
		if err := checkSDID(tt.id); (err == nil) != tt.ok {
			t.Errorf("checkSDID(%q) = %v, want ok %v", tt.id, err, tt.ok)
		}
	}
}

// parsed is what the strict parser reads back from a message.
type parsed struct {
	Priority, Facility, Severity     uint8
	Version                          uint16
	Timestamp                        time.Time
	Hostname, AppName, ProcID, MsgID string
	SD                               map[string]map[string]string
	Message                          string
}

// parse reads raw with go-syslog's RFC 5424 parser in its compliant mode
// (MSG either starts with a BOM and is UTF-8, or does not start with one)
// and fails the test on an error.
func parse(t testing.TB, raw []byte) parsed {
	t.Helper()
	msg, err := rfc5424.NewParser(rfc5424.WithCompliantMsg()).Parse(raw)
	if err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return fromMessage(msg.(*rfc5424.SyslogMessage))
}

func fromMessage(m *rfc5424.SyslogMessage) parsed {
	s := func(p *string) string {
		if p == nil {
			return ""
		}
		return *p
	}
	var p parsed
	p.Priority, p.Facility, p.Severity = *m.Priority, *m.Facility, *m.Severity
	p.Version = m.Version
	if m.Timestamp != nil {
		p.Timestamp = *m.Timestamp
	}
	p.Hostname, p.AppName, p.ProcID, p.MsgID, p.Message = s(m.Hostname), s(m.Appname), s(m.ProcID), s(m.MsgID), s(m.Message)
	if m.StructuredData != nil {
		p.SD = *m.StructuredData
	}
	return p
}

// FuzzFormat writes arbitrary records as Deliver does, two frames in a
// row, and reads them back with go-syslog's octet-counting and RFC 5424
// parsers: the frames must split where they were joined and every field
// must come back as written, the data byte for byte.
func FuzzFormat(f *testing.F) {
	f.Add("0123abcd", uint64(1), "grant.approved", int64(1764064800123456789), []byte(`{"a":"grüße"}`))
	f.Add(`a"b\c]d`, uint64(0), "grant approved ✓", int64(0), []byte("{}"))
	f.Add("a\xffb", uint64(1<<63), strings.Repeat("x", 40), int64(-1), []byte("line\nbreak"))
	f.Add("", uint64(7), "", int64(1), []byte(""))
	f.Fuzz(func(t *testing.T, id string, seq uint64, typ string, nanos int64, data []byte) {
		if bytes.HasPrefix(data, []byte(bom)) || len(data) > 0 && !utf8.Valid(data) {
			// Record data is JSON: UTF-8, and never starting with a BOM,
			// which a receiver would take for MSG-UTF8's marker.
			t.Skip()
		}
		at := time.Unix(0, nanos).UTC()
		m := message{
			Priority: 38, Time: at, Hostname: "h", AppName: "jitproxy",
			MsgID: sanitizeMsgID(typ), SDID: DefaultStructuredDataID,
			Params: []param{{"id", id}, {"seq", strconv.FormatUint(seq, 10)}}, Msg: data,
		}
		frames := appendFrame(appendFrame(nil, &m), &m)
		var got []parsed
		octetcounting.NewParser(gosyslog.WithListener(func(r *gosyslog.Result) {
			if r.Error != nil {
				t.Errorf("parse %q: %v", frames, r.Error)
				return
			}
			got = append(got, fromMessage(r.Message.(*rfc5424.SyslogMessage)))
		}), gosyslog.WithMaxMessageLength(1<<20)).Parse(bytes.NewReader(frames))
		want := parsed{
			Priority: 38, Facility: 4, Severity: 6, Version: 1,
			Hostname: "h", AppName: "jitproxy", MsgID: sanitizeMsgID(typ),
			SD:      map[string]map[string]string{DefaultStructuredDataID: {"id": validUTF8(id), "seq": strconv.FormatUint(seq, 10)}},
			Message: string(data),
		}
		if at.Year() <= 9999 && at.Year() >= 0 && !at.IsZero() {
			want.Timestamp = at.Truncate(time.Microsecond)
		}
		if diff := cmp.Diff([]parsed{want, want}, got); diff != "" {
			t.Errorf("parsed (-want +got):\n%s", diff)
		}
		if n := len(sanitizeMsgID(typ)); n > maxMsgID {
			t.Errorf("MSGID of %d bytes", n)
		}
	})
}

// validUTF8 replaces each invalid byte of s by U+FFFD, as ranging over a
// string reads it.
func validUTF8(s string) string {
	var sb strings.Builder
	for _, r := range s {
		sb.WriteRune(r)
	}
	return sb.String()
}
