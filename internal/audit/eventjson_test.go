package audit

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// encodingJSON is v as encoding/json writes it: json.Marshal when
// escapeHTML is true, else an Encoder with SetEscapeHTML(false) without
// its newline.
func encodingJSON(v any, escapeHTML bool) encoded {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(escapeHTML)
	err := enc.Encode(v)
	return encoded{strings.TrimSuffix(buf.String(), "\n"), err != nil}
}

// appended is what an AppendJSON method appends to "prefix", checking
// that it appends to dst and, when it fails, returns dst.
func appended(f func(dst []byte) ([]byte, error)) encoded {
	b, err := f([]byte("prefix"))
	if err == nil && !strings.HasPrefix(string(b), "prefix") {
		return encoded{"appended to something else than dst: " + string(b), false}
	}
	if err != nil && string(b) != "prefix" {
		return encoded{"failed, returning something else than dst: " + string(b), true}
	}
	return encoded{strings.TrimPrefix(string(b), "prefix"), err != nil}
}

// filledValue is a new T with every field set, strings from strs.
func filledValue[T any](t testing.TB, strs ...string) *T {
	v := new(T)
	n := 0
	fill(t, reflect.ValueOf(v).Elem(), strs, &n)
	return v
}

// TestAppendJSONMatchesEncodingJSON: the AppendJSON methods, which the
// OCSF encoder uses for the native objects it carries, write what
// encoding/json writes, with HTML escaping and without, for values with
// every field set (strings to escape included), with fields left out,
// and nil; and fail where encoding/json fails.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	awkward := []string{"<script>&amp;", "\u2028 \u2029 \x00\x1f\x7f", "\"quoted\" \\ back\b\f\n\r\t", "\xff\xfe\xc3", "é€𝄞", "\xed\xa0\x80"}
	late := time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)
	event := func(e *Event) func([]byte, bool) ([]byte, error) { return e.AppendJSON }
	grant := func(g *Grant) func([]byte, bool) ([]byte, error) { return g.AppendJSON }
	credential := func(c *Credential) func([]byte, bool) ([]byte, error) { return c.AppendJSON }
	noError := func(f func([]byte, bool) []byte) func([]byte, bool) ([]byte, error) {
		return func(b []byte, html bool) ([]byte, error) { return f(b, html), nil }
	}
	tests := []struct {
		name   string
		value  any
		append func(dst []byte, escapeHTML bool) ([]byte, error)
	}{
		{name: "event, every field", value: filledValue[Event](t, awkward...), append: event(filledValue[Event](t, awkward...))},
		{name: "event, every field, every string to escape in each", value: filledValue[Event](t, strings.Join(awkward, " ")), append: event(filledValue[Event](t, strings.Join(awkward, " ")))},
		{name: "event, every field, empty strings", value: filledValue[Event](t, ""), append: event(filledValue[Event](t, ""))},
		{name: "event, request", value: requestEvent(), append: event(new(requestEvent()))},
		{name: "event, zero", value: Event{}, append: event(&Event{})},
		{name: "event, nil", value: (*Event)(nil), append: event(nil)},
		{name: "event, fails: NaN duration", value: Event{DurationMS: math.NaN()}, append: event(&Event{DurationMS: math.NaN()})},
		{name: "event, fails: session expiry after year 9999", value: Event{Session: &Session{ExpiresAt: late}}, append: event(&Event{Session: &Session{ExpiresAt: late}})},
		{name: "decision, every field", value: filledValue[Decision](t, awkward...), append: noError(filledValue[Decision](t, awkward...).AppendJSON)},
		{name: "decision, every field, every string to escape in each", value: filledValue[Decision](t, strings.Join(awkward, " ")), append: noError(filledValue[Decision](t, strings.Join(awkward, " ")).AppendJSON)},
		{name: "decision, zero", value: Decision{}, append: noError((&Decision{}).AppendJSON)},
		{name: "decision, nil", value: (*Decision)(nil), append: noError((*Decision)(nil).AppendJSON)},
		{name: "grant, every field", value: filledValue[Grant](t, awkward...), append: grant(filledValue[Grant](t, awkward...))},
		{name: "grant, every field, every string to escape in each", value: filledValue[Grant](t, strings.Join(awkward, " ")), append: grant(filledValue[Grant](t, strings.Join(awkward, " ")))},
		{name: "grant, zero", value: Grant{}, append: grant(&Grant{})},
		{name: "grant, nil", value: (*Grant)(nil), append: grant(nil)},
		{name: "grant, fails: expiry after year 9999", value: Grant{ExpiresAt: late}, append: grant(&Grant{ExpiresAt: late})},
		{name: "credential, every field", value: filledValue[Credential](t, awkward...), append: credential(filledValue[Credential](t, awkward...))},
		{name: "credential, every field, every string to escape in each", value: filledValue[Credential](t, strings.Join(awkward, " ")), append: credential(filledValue[Credential](t, strings.Join(awkward, " ")))},
		{name: "credential, zero", value: Credential{}, append: credential(&Credential{})},
		{name: "credential, nil", value: (*Credential)(nil), append: credential(nil)},
		{name: "credential, fails: expiry after year 9999", value: Credential{ExpiresAt: late}, append: credential(&Credential{ExpiresAt: late})},
		{name: "admin call, every field", value: filledValue[AdminCall](t, awkward...), append: noError(filledValue[AdminCall](t, awkward...).AppendJSON)},
		{name: "admin call, every field, every string to escape in each", value: filledValue[AdminCall](t, strings.Join(awkward, " ")), append: noError(filledValue[AdminCall](t, strings.Join(awkward, " ")).AppendJSON)},
		{name: "admin call, zero", value: AdminCall{}, append: noError((&AdminCall{}).AppendJSON)},
		{name: "admin call, nil", value: (*AdminCall)(nil), append: noError((*AdminCall)(nil).AppendJSON)},
		{name: "policy set, every field", value: filledValue[PolicySet](t, awkward...), append: noError(filledValue[PolicySet](t, awkward...).AppendJSON)},
		{name: "policy set, every field, every string to escape in each", value: filledValue[PolicySet](t, strings.Join(awkward, " ")), append: noError(filledValue[PolicySet](t, strings.Join(awkward, " ")).AppendJSON)},
		{name: "policy set, zero", value: PolicySet{}, append: noError((&PolicySet{}).AppendJSON)},
		{name: "policy set, empty access", value: PolicySet{Access: []PolicyVersion{}}, append: noError((&PolicySet{Access: []PolicyVersion{}}).AppendJSON)},
		{name: "policy set, nil", value: (*PolicySet)(nil), append: noError((*PolicySet)(nil).AppendJSON)},
	}
	for _, tt := range tests {
		for _, html := range []bool{true, false} {
			t.Run(fmt.Sprintf("%s, escapeHTML %t", tt.name, html), func(t *testing.T) {
				got := appended(func(dst []byte) ([]byte, error) { return tt.append(dst, html) })
				if diff := cmp.Diff(encodingJSON(tt.value, html), got); diff != "" {
					t.Errorf("AppendJSON differs from encoding/json (-want +got):\n%s", diff)
				}
			})
		}
	}
}

// TestAppendJSONStrings: AppendJSONString and AppendJSONStrings write
// what encoding/json writes, with HTML escaping and without, for every
// byte, every rune encoding/json escapes, and nil and empty slices.
func TestAppendJSONStrings(t *testing.T) {
	var every strings.Builder
	for c := range 256 {
		every.WriteByte(byte(c))
	}
	ss := []string{every.String(), "<>&\u2028\u2029\ufffd", "\xed\xa0\x80\xf4\x90\x80\x80\xc0\xaf", "é€𝄞", ""}
	tests := []struct {
		name string
		ss   []string
	}{
		{"strings", ss},
		{"nil", nil},
		{"empty", []string{}},
	}
	for _, tt := range tests {
		for _, html := range []bool{true, false} {
			if diff := cmp.Diff(encodingJSON(tt.ss, html), appended(func(dst []byte) ([]byte, error) { return AppendJSONStrings(dst, tt.ss, html), nil })); diff != "" {
				t.Errorf("%s, escapeHTML %t: AppendJSONStrings differs from encoding/json (-want +got):\n%s", tt.name, html, diff)
			}
			for _, s := range tt.ss {
				if diff := cmp.Diff(encodingJSON(s, html), appended(func(dst []byte) ([]byte, error) { return AppendJSONString(dst, s, html), nil })); diff != "" {
					t.Errorf("escapeHTML %t: AppendJSONString(%q) differs from encoding/json (-want +got):\n%s", html, s, diff)
				}
			}
		}
	}
}
