package jit

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestWindowContains(t *testing.T) {
	// Sunday 2026-11-29 and the days around it.
	at := func(day, hh, mm int, loc string) time.Time {
		l, err := time.LoadLocation(loc)
		if err != nil {
			t.Fatal(err)
		}
		return time.Date(2026, 11, day, hh, mm, 0, 0, l)
	}
	office := Window{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Hours: "09:00-18:00", TimeZone: "Europe/Berlin"}
	night := Window{Days: []string{"fri"}, Hours: "22:00-06:00"}
	tests := []struct {
		name string
		w    Window
		t    time.Time
		want bool
	}{
		{"a Monday morning in Berlin", office, at(30, 9, 0, "Europe/Berlin"), true},
		{"just before", office, at(30, 8, 59, "Europe/Berlin"), false},
		{"the end is excluded", office, at(30, 18, 0, "Europe/Berlin"), false},
		{"the same instant in UTC", office, at(30, 8, 0, "UTC"), true},
		{"a Sunday", office, at(29, 10, 0, "Europe/Berlin"), false},
		{"every day, whole day", Window{}, at(29, 3, 0, "UTC"), true},
		{"across midnight: the opening evening", night, at(27, 23, 0, "UTC"), true},
		{"across midnight: the morning after", night, at(28, 5, 59, "UTC"), true},
		{"across midnight: the morning after ends", night, at(28, 6, 0, "UTC"), false},
		{"across midnight: not the morning after another day", night, at(27, 5, 0, "UTC"), false},
		// A grant recorded under a zone this machine does not know is held back.
		{"an unknown time zone", Window{TimeZone: "Mars/Olympus"}, at(30, 9, 0, "UTC"), false},
		{"unreadable hours", Window{Hours: "9-5"}, at(30, 9, 0, "UTC"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.w.contains(tt.t); got != tt.want {
				t.Errorf("%v contains %s = %v, want %v", tt.w, tt.t, got, tt.want)
			}
		})
	}
}

func TestConditionsCheck(t *testing.T) {
	now := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC) // a Monday
	tests := []struct {
		name           string
		c              *Conditions
		source, method string
		want           string
	}{
		{name: "none", c: nil, want: ""},
		{name: "in the window", c: &Conditions{Windows: []Window{{Days: []string{"mon"}}}}, want: ""},
		{name: "outside the windows", c: &Conditions{Windows: []Window{{Days: []string{"sat"}}, {Days: []string{"sun"}, Hours: "10:00-12:00"}}},
			want: "usable only sat all day UTC or sun 10:00-12:00 UTC"},
		{name: "from the network", c: &Conditions{SourceNetworks: []string{"10.0.0.0/8"}}, source: "10.1.2.3:5555", want: ""},
		{name: "an IPv4-mapped address", c: &Conditions{SourceNetworks: []string{"10.0.0.0/8"}}, source: "[::ffff:10.1.2.3]:5555", want: ""},
		{name: "from elsewhere", c: &Conditions{SourceNetworks: []string{"10.0.0.0/8", "192.168.0.0/16"}}, source: "127.0.0.1:5555",
			want: "usable only from 10.0.0.0/8, 192.168.0.0/16"},
		{name: "an unknown source", c: &Conditions{SourceNetworks: []string{"0.0.0.0/0"}}, source: "", want: "usable only from 0.0.0.0/0"},
		{name: "the auth method", c: &Conditions{AuthMethods: []string{"proxy-basic"}}, method: "proxy-basic", want: ""},
		{name: "another auth method", c: &Conditions{AuthMethods: []string{"oidc"}}, method: "proxy-basic",
			want: "usable only by sessions that authenticated with oidc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.c.Check(now, tt.source, tt.method); got != tt.want {
				t.Errorf("Check() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParsePolicyConditions(t *testing.T) {
	doc := func(conditions string) string {
		return `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: office}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions: [{verbs: [get], apiGroups: [""], resources: [pods]}]
  duration: {max: 1h}
  credential: {provider: tokenrequest}
` + conditions
	}
	ps, err := ParsePolicies("p.yaml", []byte(doc(`  conditions:
    windows: [{days: [mon, fri], hours: "09:00-18:00", timeZone: Europe/Berlin}]
    sourceNetworks: [10.0.0.0/8]
    authMethods: [proxy-basic]
`)))
	if err != nil {
		t.Fatal(err)
	}
	c := ps[0].Conditions
	if c == nil || len(c.Windows) != 1 || c.Windows[0].TimeZone != "Europe/Berlin" || c.SourceNetworks[0] != "10.0.0.0/8" || c.AuthMethods[0] != "proxy-basic" {
		t.Errorf("conditions %+v", c)
	}
	plain, err := ParsePolicies("p.yaml", []byte(doc("")))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := json.Marshal(plain[0]); strings.Contains(string(b), "Conditions") {
		t.Errorf("a policy without conditions hashes them (its version would change): %s", b)
	}
	if plain[0].Version == ps[0].Version {
		t.Error("conditions do not change the version")
	}
	_, err = ParsePolicies("p.yaml", []byte(doc(`  conditions:
    windows: [{days: [someday], hours: "9-5", timeZone: Mars/Olympus}, {hours: "10:00-10:00"}]
    sourceNetworks: [10.0.0.0]
    authMethods: [""]
`)))
	for _, want := range []string{`days: "someday"`, `hours: "9-5"`, `timeZone "Mars/Olympus"`, `"10:00-10:00" is empty`, `"10.0.0.0" is not a CIDR`, "authMethods[0] is empty"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
}

// TestRequestGrantOutsideItsWindow: a grant may be requested only within
// its policy's windows; the grant records the conditions for its uses.
func TestRequestGrantOutsideItsWindow(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // Thursday 2026-11-26 09:00 UTC
	p := f.svc.policies().Get("reader")
	office := *p
	office.Conditions = &Conditions{Windows: []Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Hours: "10:00-18:00"}}, AuthMethods: []string{"proxy-basic"}}
	set, err := NewPolicies([]*Policy{&office})
	if err != nil {
		t.Fatal(err)
	}
	f.svc.cfg.Policies = set
	_, err = f.svc.RequestGrant(ctx, alice, GrantRequest{Policy: "reader", Namespace: "demo", Reason: "r"})
	if !errors.Is(err, ErrForbidden) || !strings.Contains(err.Error(), "may not be requested now: its grants are usable only mon,tue,wed,thu,fri 10:00-18:00 UTC") {
		t.Errorf("at 09:00: %v", err)
	}
	f.clock.Advance(time.Hour)
	g, err := f.svc.RequestGrant(ctx, alice, GrantRequest{Policy: "reader", Namespace: "demo", Reason: "r"})
	if err != nil {
		t.Fatalf("at 10:00: %v", err)
	}
	if g.Conditions == nil || g.Conditions.AuthMethods[0] != "proxy-basic" {
		t.Errorf("the grant does not record its conditions: %+v", g.Conditions)
	}
}

func TestWindowsClose(t *testing.T) {
	office := []Window{{Days: []string{"mon", "tue", "wed", "thu", "fri"}, Hours: "08:00-19:00"}}
	// Thursday 2026-11-26.
	day := func(h, m int) time.Time { return time.Date(2026, 11, 26, h, m, 0, 0, time.UTC) }
	tests := []struct {
		name        string
		c           *Conditions
		from, until time.Time
		want        time.Time // zero: none
	}{
		{name: "no conditions", from: day(18, 30), until: day(20, 0)},
		{name: "windows, not ending early", c: &Conditions{Windows: office}, from: day(18, 30), until: day(20, 0)},
		{name: "closes within", c: &Conditions{Windows: office, EndOutsideWindows: true}, from: day(18, 30), until: day(20, 0), want: day(19, 0)},
		{name: "from mid-minute", c: &Conditions{Windows: office, EndOutsideWindows: true}, from: day(18, 59).Add(30 * time.Second), until: day(20, 0), want: day(19, 0)},
		{name: "stays within", c: &Conditions{Windows: office, EndOutsideWindows: true}, from: day(9, 0), until: day(10, 0)},
		{name: "outside already", c: &Conditions{Windows: office, EndOutsideWindows: true}, from: day(7, 0).Add(time.Second), until: day(10, 0), want: day(7, 0).Add(time.Second)},
		{
			name: "back-to-back windows are one span",
			c:    &Conditions{Windows: []Window{{Hours: "08:00-19:00"}, {Hours: "19:00-21:00"}}, EndOutsideWindows: true},
			from: day(18, 0), until: day(23, 0), want: day(21, 0),
		},
		{
			name: "across midnight, in the window's zone",
			c:    &Conditions{Windows: []Window{{Hours: "22:00-02:00", TimeZone: "Europe/Berlin"}}, EndOutsideWindows: true},
			from: day(22, 0), until: day(23, 59).Add(4 * time.Hour), want: day(23, 59).Add(time.Hour + time.Minute), // 02:00 in Berlin is 01:00 UTC
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.c.windowsClose(tt.from, tt.until)
			if ok != !tt.want.IsZero() || !got.Equal(tt.want) {
				t.Errorf("windowsClose() = %v, %v; want %v", got, ok, tt.want)
			}
		})
	}
}

// TestGrantEndsWhenItsWindowCloses: a grant whose conditions end it
// outside its windows expires when the window closes, with that reason,
// before its duration is over.
func TestGrantEndsWhenItsWindowCloses(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t) // Thursday 2026-11-26 09:00 UTC
	f.svc.cfg.Policies = mustPolicies(t, strings.Replace(testPolicies, "  duration: {default: 15m, max: 1h}\n",
		"  duration: {default: 15m, max: 1h}\n  conditions: {windows: [{hours: \"08:00-09:10\"}], endOutsideWindows: true}\n", 1))
	s, _ := f.session(t, "alice", "developers")
	g := f.request(t, alice, "reader")
	if want := time.Date(2026, 11, 26, 9, 10, 0, 0, time.UTC); !g.ExpiresAt.Equal(want) {
		t.Fatalf("ExpiresAt = %v, want the window's close %v", g.ExpiresAt, want)
	}
	if got := f.activeIDs(t, s.ID); len(got) != 1 {
		t.Fatalf("active = %v, want the grant", got)
	}
	f.clock.Advance(10 * time.Minute)
	f.svc.Reap(ctx)
	ended, err := f.svc.Get(ctx, alice, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ended.State != StateExpired || ended.EndReason != "expired early: its window closed (usable only every day 08:00-09:10 UTC)" {
		t.Errorf("after the window: %s, %q", ended.State, ended.EndReason)
	}
	if got := f.activeIDs(t, s.ID); len(got) != 0 {
		t.Errorf("active after the window = %v", got)
	}
}

func TestEndOutsideWindowsNeedsWindows(t *testing.T) {
	_, err := ParsePolicies("p.yaml", []byte(validPolicy+"  conditions: {endOutsideWindows: true}\n"))
	if err == nil || !strings.Contains(err.Error(), "spec.conditions.endOutsideWindows needs windows") {
		t.Errorf("error = %v", err)
	}
}
