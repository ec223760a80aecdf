package jit

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
)

// hostile are values a client might send to break a terminal, a log line
// or an audit record.
const (
	ansiRed     = "\x1b[31mred"
	titleEscape = "\x1b]0;pwned\x07"
)

// checkSafeError fails t unless err is ErrInvalid with a message that
// contains want and nothing a terminal would interpret.
func checkSafeError(t *testing.T, err error, want string) {
	t.Helper()
	msg := fmt.Sprint(err)
	if !errors.Is(err, ErrInvalid) || !strings.Contains(msg, want) {
		t.Errorf("error = %v, want ErrInvalid containing %q", err, want)
	}
	if i := strings.IndexFunc(msg, func(r rune) bool { return !unicode.IsPrint(r) }); i >= 0 || !utf8.ValidString(msg) {
		t.Errorf("error message %q is not printable text", msg)
	}
}

func TestRequestGrantNamespace(t *testing.T) {
	tests := []struct {
		name      string
		policy    string
		namespace string
		wantErr   error
		wantMsg   string
	}{
		{name: "listed: demo", policy: "reader", namespace: "demo"},
		{name: "listed: upper case", policy: "reader", namespace: "Demo", wantErr: ErrInvalid, wantMsg: `namespace "Demo" is not a DNS-1123 label`},
		{name: "listed: slash", policy: "reader", namespace: "demo/x", wantErr: ErrInvalid, wantMsg: `namespace "demo/x" is not a DNS-1123 label`},
		{name: "listed: path traversal", policy: "reader", namespace: "../kube-system", wantErr: ErrInvalid, wantMsg: `namespace "../kube-system" is not a DNS-1123 label`},
		{name: "listed: 64 characters", policy: "reader", namespace: strings.Repeat("a", 64), wantErr: ErrInvalid, wantMsg: "must be no more than 63 characters"},
		{name: "listed: empty", policy: "reader", namespace: "", wantErr: ErrInvalid, wantMsg: `access policy "reader" is namespaced; request it with a namespace`},
		{name: "listed: escape", policy: "reader", namespace: titleEscape, wantErr: ErrInvalid, wantMsg: `namespace "\x1b]0;pwned\a" is not a DNS-1123 label`},
		{name: "any: demo", policy: "editor", namespace: "demo"},
		{name: "any: upper case", policy: "editor", namespace: "Demo", wantErr: ErrInvalid, wantMsg: `namespace "Demo" is not a DNS-1123 label`},
		{name: "any: slash", policy: "editor", namespace: "demo/x", wantErr: ErrInvalid, wantMsg: `namespace "demo/x" is not a DNS-1123 label`},
		{name: "any: path traversal", policy: "editor", namespace: "../kube-system", wantErr: ErrInvalid, wantMsg: `namespace "../kube-system" is not a DNS-1123 label`},
		{name: "any: 64 characters", policy: "editor", namespace: strings.Repeat("a", 64), wantErr: ErrInvalid, wantMsg: "must be no more than 63 characters"},
		{name: "any: empty", policy: "editor", namespace: "", wantErr: ErrInvalid, wantMsg: `access policy "editor" is namespaced; request it with a namespace`},
		{name: "any: escape", policy: "editor", namespace: titleEscape, wantErr: ErrInvalid, wantMsg: `namespace "\x1b]0;pwned\a" is not a DNS-1123 label`},
		{name: "any: dots", policy: "editor", namespace: "kube.system", wantErr: ErrInvalid, wantMsg: "must not contain dots"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.RequestGrant(context.Background(), carol, GrantRequest{Policy: tt.policy, Namespace: tt.namespace, Reason: "debug incident 42"})
			if !errors.Is(err, tt.wantErr) || !strings.Contains(fmt.Sprint(err), tt.wantMsg) {
				t.Errorf("RequestGrant(namespace %q) error = %v, want %v containing %q", tt.namespace, err, tt.wantErr, tt.wantMsg)
			}
		})
	}
}

func TestRequestGrantRejectsHostileReason(t *testing.T) {
	tests := []struct {
		name    string
		reason  string
		wantMsg string
	}{
		{name: "ANSI colour", reason: ansiRed, wantMsg: `reason holds the control or non-printable character '\x1b' at byte 0`},
		{name: "terminal title", reason: "look " + titleEscape, wantMsg: `'\x1b' at byte 5`},
		{name: "newline", reason: "line one\nforged audit line", wantMsg: `'\n' at byte 8`},
		{name: "tab", reason: "a\tb", wantMsg: `'\t'`},
		{name: "carriage return", reason: "ok\roverwritten", wantMsg: `'\r'`},
		{name: "right-to-left override", reason: "fix \u202egnp.exe", wantMsg: `'\u202e'`},
		{name: "invalid UTF-8", reason: "bad \xff byte", wantMsg: "reason is not valid UTF-8"},
		{name: "too long", reason: strings.Repeat("x", MaxTextLength+1), wantMsg: "reason is 1025 bytes, more than the limit of 1024"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, err := f.svc.RequestGrant(context.Background(), alice, GrantRequest{Policy: "reader", Namespace: "demo", Reason: tt.reason})
			checkSafeError(t, err, tt.wantMsg)
			if n := len(f.audit.Types()); n != 0 {
				t.Errorf("a refused request left %d audit events", n)
			}
		})
	}
}

func TestRequestGrantAcceptsLongPrintableReason(t *testing.T) {
	f := newFixture(t)
	reason := "débogage: incident #42 — " + strings.Repeat("y", MaxTextLength-len("débogage: incident #42 — "))
	g, err := f.svc.RequestGrant(context.Background(), alice, GrantRequest{Policy: "reader", Namespace: "demo", Reason: reason})
	if err != nil {
		t.Fatal(err)
	}
	if g.Reason != reason {
		t.Errorf("Reason = %q, want %q", g.Reason, reason)
	}
}

func TestDecisionRejectsHostileText(t *testing.T) {
	approve := func(f *fixture, id, text string) error {
		_, err := f.svc.Approve(context.Background(), bob, id, text)
		return err
	}
	deny := func(f *fixture, id, text string) error {
		_, err := f.svc.Deny(context.Background(), bob, id, text)
		return err
	}
	revoke := func(f *fixture, id, text string) error {
		_, err := f.svc.Revoke(context.Background(), carol, id, text)
		return err
	}
	tests := []struct {
		name    string
		decide  func(f *fixture, id, text string) error
		text    string
		wantMsg string
	}{
		{name: "approve: ANSI colour", decide: approve, text: ansiRed, wantMsg: `comment holds the control or non-printable character '\x1b'`},
		{name: "approve: newline", decide: approve, text: "ok\nAPPROVED by admin", wantMsg: `comment holds the control or non-printable character '\n'`},
		{name: "approve: invalid UTF-8", decide: approve, text: "\xc3\x28", wantMsg: "comment is not valid UTF-8"},
		{name: "approve: too long", decide: approve, text: strings.Repeat("x", 2000), wantMsg: "comment is 2000 bytes, more than the limit of 1024"},
		{name: "deny: terminal title", decide: deny, text: titleEscape, wantMsg: `reason holds the control or non-printable character '\x1b'`},
		{name: "deny: newline", decide: deny, text: "no\n", wantMsg: `reason holds the control or non-printable character '\n'`},
		{name: "deny: too long", decide: deny, text: strings.Repeat("x", MaxTextLength+1), wantMsg: "more than the limit of 1024"},
		{name: "revoke: terminal title", decide: revoke, text: titleEscape, wantMsg: `reason holds the control or non-printable character '\x1b'`},
		{name: "revoke: bell", decide: revoke, text: "done\a", wantMsg: `'\a'`},
		{name: "revoke: invalid UTF-8", decide: revoke, text: "\xff", wantMsg: "reason is not valid UTF-8"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			g := f.request(t, carol, "editor")
			checkSafeError(t, tt.decide(f, g.ID, tt.text), tt.wantMsg)
			got, err := f.svc.Get(context.Background(), carol, g.ID)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(g, got); diff != "" {
				t.Errorf("a refused decision changed the grant (-before +after):\n%s", diff)
			}
		})
	}
}

func TestCreateSessionRejectsHostileNames(t *testing.T) {
	tooMany := make([]string, MaxGroups+1)
	for i := range tooMany {
		tooMany[i] = fmt.Sprintf("group-%d", i)
	}
	tests := []struct {
		name    string
		req     SessionRequest
		wantMsg string
	}{
		{name: "agent: ANSI colour", req: SessionRequest{Agent: ansiRed, User: "alice"}, wantMsg: `agent holds the control or non-printable character '\x1b' at byte 0`},
		{name: "agent: newline", req: SessionRequest{Agent: "claude\nuser: root", User: "alice"}, wantMsg: `agent holds the control or non-printable character '\n' at byte 6`},
		{name: "agent: invalid UTF-8", req: SessionRequest{Agent: "cl\xffaude", User: "alice"}, wantMsg: "agent is not valid UTF-8"},
		{name: "agent: too long", req: SessionRequest{Agent: strings.Repeat("a", MaxNameLength+1), User: "alice"}, wantMsg: "agent is 254 bytes, more than the limit of 253"},
		{name: "user: terminal title", req: SessionRequest{Agent: "claude", User: "alice" + titleEscape}, wantMsg: `user holds the control or non-printable character '\x1b' at byte 5`},
		{name: "user: newline", req: SessionRequest{Agent: "claude", User: "alice\n"}, wantMsg: `user holds the control or non-printable character '\n'`},
		{name: "user: C1 control", req: SessionRequest{Agent: "claude", User: "alice\u009b31m"}, wantMsg: `'\u009b'`},
		{name: "user: invalid UTF-8", req: SessionRequest{Agent: "claude", User: "\xff"}, wantMsg: "user is not valid UTF-8"},
		{name: "user: too long", req: SessionRequest{Agent: "claude", User: strings.Repeat("u", 1000)}, wantMsg: "user is 1000 bytes, more than the limit of 253"},
		{name: "user: leading space", req: SessionRequest{Agent: "claude", User: " alice"}, wantMsg: "user starts or ends with a space"},
		{name: "user: colon", req: SessionRequest{Agent: "claude", User: "system:admin"}, wantMsg: "must not contain ':'"},
		{name: "group: ANSI colour", req: SessionRequest{Agent: "claude", User: "alice", Groups: []string{"developers", ansiRed}}, wantMsg: `groups[1] holds the control or non-printable character '\x1b'`},
		{name: "group: newline", req: SessionRequest{Agent: "claude", User: "alice", Groups: []string{"dev\nops"}}, wantMsg: `groups[0] holds the control or non-printable character '\n'`},
		{name: "group: empty", req: SessionRequest{Agent: "claude", User: "alice", Groups: []string{""}}, wantMsg: "groups[0] is empty"},
		{name: "group: invalid UTF-8", req: SessionRequest{Agent: "claude", User: "alice", Groups: []string{"\xfe"}}, wantMsg: "groups[0] is not valid UTF-8"},
		{name: "group: too long", req: SessionRequest{Agent: "claude", User: "alice", Groups: []string{strings.Repeat("g", 300)}}, wantMsg: "groups[0] is 300 bytes, more than the limit of 253"},
		{name: "too many groups", req: SessionRequest{Agent: "claude", User: "alice", Groups: tooMany}, wantMsg: "65 groups, more than the limit of 64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			_, _, err := f.svc.CreateSession(context.Background(), runner, tt.req)
			checkSafeError(t, err, tt.wantMsg)
			if n := len(f.audit.Types()); n != 0 {
				t.Errorf("a refused session left %d audit events", n)
			}
		})
	}
}

func TestCreateSessionAcceptsNamesAtTheLimits(t *testing.T) {
	groups := make([]string, MaxGroups)
	for i := range groups {
		groups[i] = fmt.Sprintf("%03d ", i) + strings.Repeat("g", MaxNameLength-4)
	}
	req := SessionRequest{Agent: "Claude Code", User: strings.Repeat("u", MaxNameLength), Groups: groups}
	f := newFixture(t)
	if _, _, err := f.svc.CreateSession(context.Background(), runner, req); err != nil {
		t.Errorf("CreateSession() at the limits = %v", err)
	}
}

// FuzzValidate checks that what the checks accept is bounded printable
// text, and that their messages never carry what they refuse.
func FuzzValidate(f *testing.F) {
	f.Add("alice")
	f.Add(titleEscape)
	f.Add("\xff\n\u202e")
	f.Add(strings.Repeat("a", 64))
	notPrintable := func(r rune) bool { return !unicode.IsPrint(r) }
	f.Fuzz(func(t *testing.T, s string) {
		for _, err := range []error{checkName("user", s), checkText("reason", s), checkNamespace(s)} {
			if msg := fmt.Sprint(err); !utf8.ValidString(msg) || strings.ContainsFunc(msg, notPrintable) {
				t.Fatalf("message %q is not printable text", msg)
			}
		}
		if checkText("reason", s) == nil && (len(s) > MaxTextLength || !utf8.ValidString(s) || strings.ContainsFunc(s, notPrintable)) {
			t.Fatalf("checkText accepted %q", s)
		}
		if checkName("user", s) == nil && (s == "" || len(s) > MaxNameLength || strings.TrimSpace(s) != s || checkText("user", s) != nil) {
			t.Fatalf("checkName accepted %q", s)
		}
	})
}
