package ocsf

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// encoded is an encoding's bytes, or that it failed.
type encoded struct {
	Data   string
	Failed bool
}

// oracle is r as encoding/json writes it, as Append wrote a record before
// it was written by hand: an Encoder with SetEscapeHTML(false), without
// its newline.
func oracle(r *record) encoded {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	err := enc.Encode(r)
	return encoded{strings.TrimSuffix(buf.String(), "\n"), err != nil}
}

// oracleOf is the oracle of the record Append writes for e and c.
func oracleOf(e audit.Event, c audit.Chain) encoded {
	r := mapEvent(e)
	r.Metadata.Sequence = c.Seq
	r.Unmapped.PrevHash = c.Prev
	return oracle(&r)
}

// appended is what append appends to "prefix", checking that it appends
// to dst and, when it fails, returns dst as it got it.
func appended(append func(dst []byte) ([]byte, error)) encoded {
	b, err := append([]byte("prefix"))
	if err == nil && !strings.HasPrefix(string(b), "prefix") {
		return encoded{"appended to something else than dst: " + string(b), false}
	}
	if err != nil && string(b) != "prefix" {
		return encoded{"failed, returning something else than dst: " + string(b), true}
	}
	return encoded{strings.TrimPrefix(string(b), "prefix"), err != nil}
}

// appendRecord is r.appendJSON returning dst when it fails, as Append
// does (appendJSON returns nil).
func appendRecord(r *record) func(dst []byte) ([]byte, error) {
	return func(dst []byte) ([]byte, error) {
		b, err := r.appendJSON(dst)
		if err != nil {
			return dst, err
		}
		return b, nil
	}
}

// fill sets every field of v, recursively, to a value that no omitempty
// leaves out, taking strings from strs in turn; an interface (entity.data)
// gets a *audit.Grant. It fails on a kind of field it does not know, so
// that a new field's kind gets a case here (and in the append methods).
func fill(t testing.TB, v reflect.Value, strs []string, n *int) {
	next := func() string {
		s := strs[*n%len(strs)]
		*n++
		return s
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(next())
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int, reflect.Int64:
		v.SetInt(int64(200 + *n))
		*n++
	case reflect.Uint64:
		v.SetUint(uint64(7 + *n))
		*n++
	case reflect.Float64:
		v.SetFloat(1.25 + float64(*n))
		*n++
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(t, v.Elem(), strs, n)
	case reflect.Slice:
		v.Set(reflect.MakeSlice(v.Type(), 2, 2))
		for i := range 2 {
			fill(t, v.Index(i), strs, n)
		}
	case reflect.Interface:
		g := reflect.New(reflect.TypeFor[audit.Grant]())
		fill(t, g.Elem(), strs, n)
		v.Set(g)
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			v.Set(reflect.ValueOf(time.Date(2026, 1, 2, 3, 4, 5, 6000+*n, time.UTC)))
			*n++
			return
		}
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(t, v.Field(i), strs, n)
			}
		}
	default:
		t.Fatalf("fill: a field of kind %s (%s): teach fill and the append methods about it", v.Kind(), v.Type())
	}
}

// filled is a new T with every field set, strings from strs.
func filled[T any](t testing.TB, strs ...string) *T {
	v := new(T)
	n := 0
	fill(t, reflect.ValueOf(v).Elem(), strs, &n)
	return v
}

// awkward are strings encoding/json writes in its own ways: escapes,
// invalid UTF-8, and HTML characters it leaves as they are here.
var awkward = []string{"<script>&amp;", "\u2028 \u2029 \x00\x1f\x7f", "\"quoted\" \\ back\b\f\n\r\t", "\xff\xfe\xc3", "é€𝄞", "\xed\xa0\x80", "Identity & Access Management"}

// eventTypes are the types of the test cases, every type jitproxy emits
// (TestEveryEmittedTypeIsMappedAndTested), and one it does not.
func eventTypes() []string {
	var types []string
	for _, c := range cases() {
		types = append(types, c.event.Type)
	}
	slices.Sort(types)
	return append(slices.Compact(types), "policy.reloaded")
}

// TestAppendMatchesEncodingJSON: Append writes exactly what encoding/json
// wrote of the same record, for the events of the golden files, for
// events of every type with every field set (strings to escape
// included), and for records with every field set by reflection (so a
// field added to record and not to its append methods fails here), with
// fields left out, and with values encoding/json writes in its own ways;
// and fails where encoding/json fails.
func TestAppendMatchesEncodingJSON(t *testing.T) {
	t.Run("events", func(t *testing.T) {
		late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
		type eventCase struct {
			name  string
			event audit.Event
			chain audit.Chain
		}
		var tests []eventCase
		for _, c := range cases() {
			tests = append(tests, eventCase{name: c.name, event: c.event, chain: chain})
		}
		for _, typ := range eventTypes() {
			for name, strs := range map[string][]string{"plain strings": {"a", "b"}, "empty strings": {""}, "strings to escape": awkward, "every string to escape in each": {strings.Join(awkward, " ")}} {
				e := filled[audit.Event](t, strs...)
				e.Type = typ
				tests = append(tests, eventCase{name: typ + ", every field, " + name, event: *e, chain: audit.Chain{Seq: math.MaxUint64, Prev: strs[0]}})
				e.Caller, e.Actor = nil, nil
				tests = append(tests, eventCase{name: typ + ", no caller or actor, " + name, event: *e, chain: audit.Chain{Prev: strs[0]}})
			}
			tests = append(tests,
				eventCase{name: typ + ", zero", event: audit.Event{Type: typ}},
				eventCase{name: typ + ", grant expiry after year 9999 (fails where the record carries it)", event: audit.Event{Type: typ, Caller: caller(), Action: kube("GET", "/", "get", "", "", "", "", "", ""), Grant: &audit.Grant{ExpiresAt: late}}},
				eventCase{name: typ + ", credential expiry after year 9999 (fails where the record carries it)", event: audit.Event{Type: typ, Caller: caller(), Credential: &audit.Credential{ExpiresAt: late}}},
				eventCase{name: typ + ", NaN duration (fails for a Base Event)", event: audit.Event{Type: typ, DurationMS: math.NaN()}},
				eventCase{name: typ + ", body too large for body_length", event: audit.Event{Type: typ, Caller: caller(), Actor: bob, Outcome: &audit.Outcome{Status: 200, Bytes: math.MaxInt64}}},
			)
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got := appended(func(dst []byte) ([]byte, error) { return Append(dst, tt.event, tt.chain) })
				if diff := cmp.Diff(oracleOf(tt.event, tt.chain), got); diff != "" {
					t.Errorf("Append differs from encoding/json (-want +got):\n%s", diff)
				}
			})
		}
	})

	t.Run("records", func(t *testing.T) {
		entity := func(data any) *record { return &record{Entity: &managedEntity{Data: data}} }
		zero, minusOne, applied := int64(0), int64(-1), false
		tests := []struct {
			name   string
			record *record
		}{
			{name: "zero", record: &record{}},
			{name: "every field", record: filled[record](t, "a", "b")},
			{name: "every field, empty strings", record: filled[record](t, "")},
			{name: "every field, strings to escape", record: filled[record](t, awkward...)},
			{name: "every field, every string to escape in each", record: filled[record](t, strings.Join(awkward, " "))},
			{name: "empty objects", record: &record{Cloud: &cloud{}, Actor: &actor{}, SrcEndpoint: &endpoint{}, DstEndpoint: &endpoint{},
				API: &api{}, HTTPRequest: &httpRequest{}, HTTPResponse: &httpResponse{}, User: &user{}, Session: &session{}, Service: &service{},
				Entity: &managedEntity{}, Unmapped: unmapped{Decision: &audit.Decision{}, Grant: &audit.Grant{}, Credential: &audit.Credential{}, Admin: &audit.AdminCall{}, Event: &audit.Event{}}}},
			{name: "empty nested objects", record: &record{Cloud: &cloud{Account: &account{}}, Actor: &actor{User: &user{}, Session: &session{}},
				API: &api{Service: &service{}, Group: &group{}, Request: &apiRequest{}, Response: &apiResponse{}}, HTTPRequest: &httpRequest{URL: &url{}},
				Authorizations: []authorization{{}, {Policy: &policy{}}}, Resources: []resource{{}}, Entity: &managedEntity{User: &user{Groups: []group{{}}}, Policy: &policy{}}}},
			{name: "empty, not nil, slices", record: &record{Metadata: metadata{Profiles: []string{}}, Authorizations: []authorization{}, Resources: []resource{},
				User: &user{Groups: []group{}}, Privileges: []string{}, Unmapped: unmapped{Event: &audit.Event{Caller: &access.Caller{Groups: []string{}}}}}},
			{name: "pointers to zero", record: &record{Duration: &zero, Authorizations: []authorization{{Policy: &policy{IsApplied: &applied}}}}},
			{name: "negative numbers", record: &record{ActivityID: -1, StatusID: -2, Time: math.MinInt64, TimezoneOffset: -60, StartTime: -1, EndTime: -1, Duration: &minusOne,
				Metadata: metadata{Sequence: math.MaxUint64}, HTTPResponse: &httpResponse{Code: -1, BodyLength: math.MinInt64}, Unmapped: unmapped{Bytes: -1}}},
			{name: "data, credential", record: entity(filled[audit.Credential](t, awkward...))},
			{name: "data, credential, every string to escape in each", record: entity(filled[audit.Credential](t, strings.Join(awkward, " ")))},
			{name: "data, policy set", record: entity(filled[audit.PolicySet](t, awkward...))},
			{name: "data, policy set, every string to escape in each", record: entity(filled[audit.PolicySet](t, strings.Join(awkward, " ")))},
			{name: "data, policy set without access", record: entity(&audit.PolicySet{})},
			{name: "data, nil grant", record: entity((*audit.Grant)(nil))},
			{name: "data, nil credential", record: entity((*audit.Credential)(nil))},
			{name: "data, nil policy set", record: entity((*audit.PolicySet)(nil))},
			{name: "data, a grant not by pointer", record: entity(*filled[audit.Grant](t, awkward...))},
			{name: "data, a map", record: entity(map[string]any{"z": 1, "a": []string{"<&>"}, "\u2028": nil, "é": 1.5e-7, "": map[string]int{"b": 2, "a": 1}})},
			{name: "data, raw JSON", record: entity(json.RawMessage(` {"b": "<&>\u2028", "a": [1, 2]} `))},
			{name: "data, a string", record: entity("<&>\u2028\xff")},
			{name: "fails: data, grant expiry after year 9999", record: entity(&audit.Grant{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)})},
			{name: "fails: data, NaN", record: entity(math.NaN())},
			{name: "fails: data, a channel", record: entity(make(chan int))},
			{name: "fails: unmapped grant expiry after year 9999", record: &record{Unmapped: unmapped{Grant: &audit.Grant{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}}},
			{name: "fails: unmapped credential expiry before year 0", record: &record{Unmapped: unmapped{Credential: &audit.Credential{ExpiresAt: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}}}},
			{name: "fails: unmapped event, NaN duration", record: &record{Unmapped: unmapped{Event: &audit.Event{DurationMS: math.NaN()}}}},
			{name: "fails: unmapped event, infinite duration", record: &record{Unmapped: unmapped{Event: &audit.Event{DurationMS: math.Inf(1)}}}},
			{name: "fails: unmapped event, zone offset of 24 hours", record: &record{Unmapped: unmapped{Event: &audit.Event{Time: t0.In(time.FixedZone("", 24*3600))}}}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				if diff := cmp.Diff(oracle(tt.record), appended(appendRecord(tt.record))); diff != "" {
					t.Errorf("appendJSON differs from encoding/json (-want +got):\n%s", diff)
				}
			})
		}
	})
}

// FuzzAppendMatchesJSON: Append writes what encoding/json wrote of the
// same record for events of every type with every field set from fuzzed
// strings (invalid UTF-8, control characters, <, >, &, U+2028 included),
// with and without a caller and an actor, fuzzed times, durations,
// statuses and sizes; and so does appendJSON for a record with every
// field set from them.
func FuzzAppendMatchesJSON(f *testing.F) {
	f.Add("alice", "<a href=\"x\">&amp;</a>", 1.734, int64(1795970847), int64(123456789), 0, uint64(1), 200, int64(1834))
	f.Add("\u2028\u2029", "\xff\x00\x1f\x7f\\", 1e-7, int64(-62135596800), int64(0), 19800, uint64(0), 403, int64(5<<30))
	f.Add("", "\xed\xa0\x80\xc3", 1e21, int64(253402300800), int64(999999999), -3600, uint64(math.MaxUint64), 0, int64(-1))
	f.Add("10.1.2.3:51234", "POST /v1/grants/{id}/approve", math.Inf(1), int64(0), int64(0), 86400, uint64(7), 502, int64(0))
	types := eventTypes()
	f.Fuzz(func(t *testing.T, s1, s2 string, duration float64, sec, nsec int64, offset int, seq uint64, status int, size int64) {
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		c := audit.Chain{Seq: seq, Prev: s2}
		for _, typ := range types {
			e := filled[audit.Event](t, s1, s2)
			e.Type, e.DurationMS = typ, duration
			e.Time, e.Grant.ExpiresAt, e.Session.ExpiresAt, e.Credential.ExpiresAt = at, at.UTC(), at, time.Time{}
			e.Outcome.Status, e.Outcome.Bytes = status, size
			if diff := cmp.Diff(oracleOf(*e, c), appended(func(dst []byte) ([]byte, error) { return Append(dst, *e, c) })); diff != "" {
				t.Errorf("%s: Append differs from encoding/json (-want +got):\n%s", typ, diff)
			}
			e.Caller, e.Actor = nil, nil
			if diff := cmp.Diff(oracleOf(*e, c), appended(func(dst []byte) ([]byte, error) { return Append(dst, *e, c) })); diff != "" {
				t.Errorf("%s without caller and actor: Append differs from encoding/json (-want +got):\n%s", typ, diff)
			}
		}
		r := filled[record](t, s1, s2)
		*r.Duration, r.Time, r.Metadata.Sequence = size, sec, seq
		if diff := cmp.Diff(oracle(r), appended(appendRecord(r))); diff != "" {
			t.Errorf("record: appendJSON differs from encoding/json (-want +got):\n%s", diff)
		}
	})
}

// TestAppendDoesNotAllocate: writing a record allocates nothing once the
// buffer is large enough, for a record of every test case and every
// type of data the mapping puts in an entity: no record, nor what it
// carries, goes through encoding/json.
func TestAppendDoesNotAllocate(t *testing.T) {
	records := map[string]*record{
		"every field":    filled[record](t, awkward...),
		"credential":     {Entity: &managedEntity{Data: filled[audit.Credential](t, "a")}},
		"policy set":     {Entity: &managedEntity{Data: filled[audit.PolicySet](t, "a")}},
		"a nil grant":    {Entity: &managedEntity{Data: (*audit.Grant)(nil)}},
		"a native event": {Unmapped: unmapped{Event: filled[audit.Event](t, awkward...)}},
	}
	for _, c := range cases() {
		r := mapEvent(c.event)
		records[c.name] = &r
	}
	buf := make([]byte, 0, 1<<16)
	for name, r := range records {
		if n := testing.AllocsPerRun(10, func() {
			if _, err := r.appendJSON(buf); err != nil {
				t.Fatal(err)
			}
		}); n != 0 {
			t.Errorf("%s: appendJSON allocates %v times, want 0", name, n)
		}
	}
}
