package audit

import (
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// nativeRecord is the native format as encoding/json writes it, the
// oracle of AppendNative: the Event, then seq, prev_hash and hash.
type nativeRecord struct {
	Event
	Seq      uint64 `json:"seq"`
	PrevHash string `json:"prev_hash"`
	Hash     string `json:"hash"`
}

// encoded is an encoding's bytes, or that it failed.
type encoded struct {
	Data   string
	Failed bool
}

func oracle(e Event, c Chain) encoded {
	b, err := json.Marshal(nativeRecord{Event: e, Seq: c.Seq, PrevHash: c.Prev})
	return encoded{string(b), err != nil}
}

func native(e Event, c Chain) encoded {
	b, err := AppendNative([]byte("prefix"), e, c)
	if err == nil && !strings.HasPrefix(string(b), "prefix") {
		return encoded{"appended to something else than dst: " + string(b), false}
	}
	if err != nil && string(b) != "prefix" {
		return encoded{"failed, returning something else than dst: " + string(b), true}
	}
	return encoded{strings.TrimPrefix(string(b), "prefix"), err != nil}
}

// fill sets every field of v, recursively, to a value that no omitempty
// or omitzero leaves out, taking strings from strs in turn; it fails on a
// kind of field it does not know, so that a new field's kind gets a case
// here (and in AppendNative).
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
		t.Fatalf("fill: a field of kind %s (%s): teach fill and AppendNative about it", v.Kind(), v.Type())
	}
}

// filled is an Event with every field set, strings from strs.
func filled(t testing.TB, strs ...string) Event {
	var e Event
	n := 0
	fill(t, reflect.ValueOf(&e).Elem(), strs, &n)
	return e
}

// requestEvent is a proxied request's last event as jitproxy records it:
// every object a request event has.
func requestEvent() Event {
	t := time.Date(2026, 11, 29, 16, 47, 4, 123456789, time.UTC)
	return Event{
		Version: SchemaVersion, ID: "0123456789abcdef0123456789abcdef", Time: t, Type: TypeRequest,
		RequestID: "0123456789abcdef",
		Caller:    &access.Caller{Session: "s-7f3a", Agent: "claude-code", User: "alice@example.com", Groups: []string{"sre", "oncall"}, AuthMethod: "proxy-basic", SourceAddr: "127.0.0.1:51234"},
		Action: &access.Action{Kind: access.KindKubernetes, Target: "prod", Method: "GET", Path: "/api/v1/namespaces/demo/pods",
			Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		Decision:   &Decision{Allowed: true, Reasons: []string{"permitted by grant g-abcdefghijklmnop"}},
		Grant:      &Grant{ID: "g-abcdefghijklmnop", Policy: "pod-reader", Version: "a1b2c3d4e5f6", Namespace: "demo", ExpiresAt: t.Add(time.Hour)},
		Credential: &Credential{Provider: "tokenrequest", Target: "prod", Subject: "system:serviceaccount:demo:reader", ExpiresAt: t.Add(time.Hour)},
		Outcome:    &Outcome{Status: 200, Bytes: 1234},
		DurationMS: 1.734,
	}
}

// BenchmarkEncodeNative measures encoding one request event in the native
// format: into a new slice, appended to a buffer used again (as a stream
// does), and sealed into the chain.
func BenchmarkEncodeNative(b *testing.B) {
	e := requestEvent()
	c := Chain{Seq: 12345, Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	b.Run("append", func(b *testing.B) {
		var buf []byte
		b.ReportAllocs()
		for b.Loop() {
			var err error
			if buf, err = AppendNative(buf[:0], e, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeNative(e, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+seal", func(b *testing.B) {
		ch := NewChainer(nil)
		b.ReportAllocs()
		for b.Loop() {
			data, err := EncodeNative(e, c)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ch.Seal(c.Prev, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestNativeMatchesEncodingJSON: AppendNative writes exactly what
// json.Marshal writes, for events with every field set (by reflection, so
// a field added to Event and not to AppendNative fails here), with fields
// left out, and with the strings, numbers and times encoding/json writes
// in its own ways; and fails where json.Marshal fails.
func TestNativeMatchesEncodingJSON(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 16, 47, 4, 123456789, time.UTC)
	ist := time.FixedZone("IST", 5*3600+1800)
	awsAction := func(resources []string) *access.Action {
		return &access.Action{Kind: access.KindAWS, Target: "aws", Method: "PUT", Path: "/b/k",
			AWS: &access.AWSAction{Service: "s3", Action: "s3:PutObject", Region: "eu-west-1", Resources: resources}}
	}
	tests := []struct {
		name  string
		event Event
		chain Chain
	}{
		{name: "zero", event: Event{}},
		{name: "every field", event: filled(t, "a", "b"), chain: Chain{Seq: 3, Prev: "abc"}},
		{name: "every field, empty strings", event: filled(t, ""), chain: Chain{Seq: 3, Prev: "abc"}},
		{name: "every field, strings to escape", event: filled(t, "<script>&amp;", "\u2028 \u2029 \x00\x1f\x7f", "\"quoted\" \\ back\b\f\n\r\t", "\xff\xfe\xc3", "é€𝄞", "\xed\xa0\x80"), chain: Chain{Seq: math.MaxUint64, Prev: "<>&\u2028"}},
		{name: "request", event: requestEvent(), chain: Chain{Seq: 1}},
		{name: "non-resource request", event: Event{Type: TypeRequest, Time: t0, Action: &access.Action{Kind: access.KindKubernetes, Method: "GET", Path: "/version", Kubernetes: &access.KubernetesAction{Verb: "get"}}}},
		{name: "aws, no resources", event: Event{Type: TypeRequest, Action: awsAction(nil)}},
		{name: "aws, empty resources", event: Event{Type: TypeRequest, Action: awsAction([]string{})}},
		{name: "aws, resources", event: Event{Type: TypeRequest, Action: awsAction([]string{"arn:aws:s3:::b/k", "arn:aws:s3:::b"})}},
		{name: "empty objects", event: Event{Caller: &access.Caller{}, Actor: &Actor{}, Action: &access.Action{}, Decision: &Decision{}, Grant: &Grant{}, Session: &Session{}, Credential: &Credential{}, Admin: &AdminCall{}, Policies: &PolicySet{}, Outcome: &Outcome{}}},
		{name: "empty, not nil, slices", event: Event{Caller: &access.Caller{Groups: []string{}}, Actor: &Actor{Groups: []string{}}, Decision: &Decision{Reasons: []string{}, Policies: []string{}}, Grant: &Grant{Approvers: []string{}}, Session: &Session{Groups: []string{}}, Policies: &PolicySet{Access: []PolicyVersion{}}}},
		{name: "times in a zone", event: Event{Time: t0.In(ist), Grant: &Grant{ExpiresAt: t0.In(ist)}, Session: &Session{ExpiresAt: time.Date(2026, 1, 1, 0, 0, 0, 0, ist)}, Credential: &Credential{ExpiresAt: t0.Add(-time.Hour)}}},
		{name: "zero time in a zone", event: Event{Time: time.Time{}.In(ist), Grant: &Grant{ExpiresAt: time.Time{}.In(ist)}}},
		{name: "times at the edges", event: Event{Time: time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC), Grant: &Grant{ExpiresAt: time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC)}}},
		{name: "outcome, negative numbers", event: Event{Outcome: &Outcome{Status: -1, Bytes: math.MinInt64}}},
		{name: "outcome, large numbers", event: Event{Outcome: &Outcome{Status: math.MaxInt, Bytes: math.MaxInt64, Error: "upstream <unavailable>"}}},
		{name: "duration, small", event: Event{DurationMS: 1e-7}},
		{name: "duration, smallest without exponent", event: Event{DurationMS: 1e-6}},
		{name: "duration, large", event: Event{DurationMS: 1e21}},
		{name: "duration, largest without exponent", event: Event{DurationMS: 999999999999999999999}},
		{name: "duration, negative", event: Event{DurationMS: -0.000000123}},
		{name: "duration, negative zero", event: Event{DurationMS: math.Copysign(0, -1)}},
		{name: "duration, denormal", event: Event{DurationMS: 5e-324}},
		{name: "duration, largest", event: Event{DurationMS: math.MaxFloat64}},
		{name: "duration, fraction", event: Event{DurationMS: 1.0 / 3}},
		{name: "fails: time after year 9999", event: Event{Time: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "fails: time before year 0", event: Event{Time: time.Date(-1, 1, 1, 0, 0, 0, 0, time.UTC)}},
		{name: "fails: expiry after year 9999", event: Event{Credential: &Credential{ExpiresAt: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}},
		{name: "fails: zone offset of 24 hours", event: Event{Time: t0.In(time.FixedZone("", 24*3600))}},
		{name: "fails: NaN duration", event: Event{DurationMS: math.NaN()}},
		{name: "fails: infinite duration", event: Event{DurationMS: math.Inf(-1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(oracle(tt.event, tt.chain), native(tt.event, tt.chain)); diff != "" {
				t.Errorf("AppendNative differs from json.Marshal (-want +got):\n%s", diff)
			}
		})
	}
}

// FuzzNative: AppendNative writes what json.Marshal writes for events with
// every field set from fuzzed strings (invalid UTF-8, control characters,
// <, >, &, U+2028 included), durations, times and chain fields.
func FuzzNative(f *testing.F) {
	f.Add("alice", "<a href=\"x\">&amp;</a>", 1.734, int64(1795970847), int64(123456789), 0, uint64(1))
	f.Add("\u2028\u2029", "\xff\x00\x1f\x7f\\", 1e-7, int64(-62135596800), int64(0), 19800, uint64(0))
	f.Add("", "\xed\xa0\x80\xc3", 1e21, int64(253402300800), int64(999999999), -3600, uint64(math.MaxUint64))
	f.Fuzz(func(t *testing.T, s1, s2 string, duration float64, sec, nsec int64, offset int, seq uint64) {
		e := filled(t, s1, s2)
		at := time.Unix(sec, nsec).In(time.FixedZone("", offset))
		e.Time, e.Grant.ExpiresAt, e.Session.ExpiresAt, e.Credential.ExpiresAt = at, at.UTC(), at, time.Time{}
		e.DurationMS = duration
		c := Chain{Seq: seq, Prev: s2}
		if diff := cmp.Diff(oracle(e, c), native(e, c)); diff != "" {
			t.Errorf("AppendNative differs from json.Marshal (-want +got):\n%s", diff)
		}
	})
}
