package jit

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Conditions are an access policy's limits on when, from where and how
// its grants may be requested and used (Kore's role-assumption
// constraints). Each kind that is set must hold; a kind that is not set
// does not limit. They are checked when a grant is requested and on every
// request made under it; the grant records the conditions of its policy's
// version.
type Conditions struct {
	// Windows, if any, are when grants may be requested and used: a time
	// in any of them will do.
	Windows []Window `yaml:"windows" json:"windows,omitempty"`
	// SourceNetworks, if any, are the networks (CIDRs) the agent session's
	// requests must come from, and the grant request too.
	SourceNetworks []string `yaml:"sourceNetworks" json:"source_networks,omitempty"`
	// AuthMethods, if any, are how the agent session must have
	// authenticated to the proxy (proxy-basic).
	AuthMethods []string `yaml:"authMethods" json:"auth_methods,omitempty"`
	// EndOutsideWindows ends a grant early, at the first moment outside
	// Windows, rather than holding it back until a window opens again: a
	// grant activated at 18:30 under 08:00-19:00 expires at 19:00, and
	// one activated outside every window expires at once.
	EndOutsideWindows bool `yaml:"endOutsideWindows" json:"end_outside_windows,omitempty"`
}

// Window is a weekly time window: some days of the week, from one time
// of day to another, in a time zone.
type Window struct {
	// Days are mon, tue, wed, thu, fri, sat, sun; none: every day.
	Days []string `yaml:"days" json:"days,omitempty"`
	// Hours is "HH:MM-HH:MM", the end excluded; "" is the whole day. An
	// end before the start crosses midnight: "22:00-06:00" (the days are
	// then the days the window opens).
	Hours string `yaml:"hours" json:"hours,omitempty"`
	// TimeZone is an IANA name (Europe/Berlin); default UTC.
	TimeZone string `yaml:"timeZone" json:"time_zone,omitempty"`
}

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

// validate reports every problem of c, named from where.
func (c *Conditions) validate(where string) error {
	var errs []error
	for i, w := range c.Windows {
		at := fmt.Sprintf("%s.windows[%d]", where, i)
		for _, d := range w.Days {
			if !slices.Contains(weekdays, d) {
				errs = append(errs, fmt.Errorf("%s.days: %q is not one of %v", at, d, weekdays))
			}
		}
		if _, _, err := w.minutes(); err != nil {
			errs = append(errs, fmt.Errorf("%s.hours: %w", at, err))
		}
		if _, err := w.location(); err != nil {
			errs = append(errs, fmt.Errorf("%s.timeZone %q: %w", at, w.TimeZone, err))
		}
	}
	for i, n := range c.SourceNetworks {
		if _, err := netip.ParsePrefix(n); err != nil {
			errs = append(errs, fmt.Errorf("%s.sourceNetworks[%d]: %q is not a CIDR such as 10.0.0.0/8", where, i, n))
		}
	}
	if c.EndOutsideWindows && len(c.Windows) == 0 {
		errs = append(errs, fmt.Errorf("%s.endOutsideWindows needs windows", where))
	}
	for i, m := range c.AuthMethods {
		if m == "" {
			errs = append(errs, fmt.Errorf("%s.authMethods[%d] is empty", where, i))
		}
	}
	return errors.Join(errs...)
}

// minutes returns the window's start and end in minutes after midnight;
// 0 and 1440 for the whole day.
func (w Window) minutes() (from, to int, err error) {
	if w.Hours == "" {
		return 0, 24 * 60, nil
	}
	a, b, ok := strings.Cut(w.Hours, "-")
	if !ok {
		return 0, 0, fmt.Errorf("%q: want HH:MM-HH:MM", w.Hours)
	}
	parse := func(s string) (int, error) {
		t, err := time.Parse("15:04", strings.TrimSpace(s))
		if err != nil {
			return 0, fmt.Errorf("%q: want HH:MM-HH:MM", w.Hours)
		}
		return t.Hour()*60 + t.Minute(), nil
	}
	if from, err = parse(a); err != nil {
		return 0, 0, err
	}
	if to, err = parse(b); err != nil {
		return 0, 0, err
	}
	if from == to {
		return 0, 0, fmt.Errorf("%q is empty: leave hours out for the whole day", w.Hours)
	}
	return from, to, nil
}

// zones caches the time zones windows name: time.LoadLocation reads the
// zone's file each time, and windows are checked on every request.
var zones sync.Map // name → *time.Location

func (w Window) location() (*time.Location, error) {
	if w.TimeZone == "" {
		return time.UTC, nil
	}
	if loc, ok := zones.Load(w.TimeZone); ok {
		return loc.(*time.Location), nil
	}
	loc, err := time.LoadLocation(w.TimeZone)
	if err != nil {
		return nil, err
	}
	zones.Store(w.TimeZone, loc)
	return loc, nil
}

// contains reports whether t is in w. A window that cannot be read (a
// grant recorded under a time zone this machine does not know) contains
// nothing: the grant is held back rather than used.
func (w Window) contains(t time.Time) bool {
	loc, err := w.location()
	if err != nil {
		return false
	}
	from, to, err := w.minutes()
	if err != nil {
		return false
	}
	local := t.In(loc)
	m := local.Hour()*60 + local.Minute()
	day := func(t time.Time) bool { return len(w.Days) == 0 || slices.Contains(w.Days, weekdays[t.Weekday()]) }
	if from < to {
		return m >= from && m < to && day(local)
	}
	// Across midnight: the evening of an opening day, or the morning after.
	return m >= from && day(local) || m < to && day(local.AddDate(0, 0, -1))
}

func (w Window) String() string {
	days := "every day"
	if len(w.Days) > 0 {
		days = strings.Join(w.Days, ",")
	}
	hours := w.Hours
	if hours == "" {
		hours = "all day"
	}
	tz := w.TimeZone
	if tz == "" {
		tz = "UTC"
	}
	return days + " " + hours + " " + tz
}

// inWindows reports whether t is in one of c's windows; a c without
// windows always contains t.
func (c *Conditions) inWindows(t time.Time) bool {
	return len(c.Windows) == 0 || slices.ContainsFunc(c.Windows, func(w Window) bool { return w.contains(t) })
}

// windowsClose returns, for a grant active from from until until whose
// conditions end it outside their windows, the first moment in that span
// outside every window, and true; false if there is none, or c does not
// end grants early. Windows are minute-grained, so it looks at from and
// then each minute's start.
func (c *Conditions) windowsClose(from, until time.Time) (time.Time, bool) {
	if c == nil || !c.EndOutsideWindows || len(c.Windows) == 0 {
		return time.Time{}, false
	}
	for t := from; t.Before(until); t = t.Truncate(time.Minute).Add(time.Minute) {
		if !c.inWindows(t) {
			return t, true
		}
	}
	return time.Time{}, false
}

// windowsString lists c's windows for a message.
func (c *Conditions) windowsString() string {
	var ws []string
	for _, w := range c.Windows {
		ws = append(ws, w.String())
	}
	return strings.Join(ws, " or ")
}

// Check reports why c does not hold for a use at now, by a session from
// source (host:port, or an address) that authenticated with authMethod;
// "" when it holds. A nil c always holds. The reason names the condition,
// never more than the policy says.
func (c *Conditions) Check(now time.Time, source, authMethod string) string {
	if c == nil {
		return ""
	}
	if !c.inWindows(now) {
		return "usable only " + c.windowsString()
	}
	if len(c.SourceNetworks) > 0 && !inNetworks(source, c.SourceNetworks) {
		return "usable only from " + strings.Join(c.SourceNetworks, ", ")
	}
	if len(c.AuthMethods) > 0 && !slices.Contains(c.AuthMethods, authMethod) {
		return "usable only by sessions that authenticated with " + strings.Join(c.AuthMethods, " or ")
	}
	return ""
}

// inNetworks reports whether source (host:port or an address) is in one
// of networks; an unknown or unreadable source is in none.
func inNetworks(source string, networks []string) bool {
	addr, err := netip.ParseAddr(source)
	if err != nil {
		ap, err := netip.ParseAddrPort(source)
		if err != nil {
			return false
		}
		addr = ap.Addr()
	}
	addr = addr.Unmap()
	for _, n := range networks {
		if p, err := netip.ParsePrefix(n); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// conditions returns p's conditions, never nil.
func (p *Policy) conditions() *Conditions {
	if p.Conditions == nil {
		return &Conditions{}
	}
	return p.Conditions
}
