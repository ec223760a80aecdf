package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/jit"
)

var at = time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)

// checkTerminalSafe fails t unless out is wantLines lines of printable
// text: nothing a terminal would take as a control sequence.
func checkTerminalSafe(t *testing.T, out string, wantLines int) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != wantLines {
		t.Errorf("got %d lines, want %d:\n%s", len(lines), wantLines, out)
	}
	for _, l := range lines {
		if !utf8.ValidString(l) || strings.ContainsFunc(l, func(r rune) bool { return !unicode.IsPrint(r) }) {
			t.Errorf("line %q holds a control or non-printable character", l)
		}
	}
}

func TestPrintGrant(t *testing.T) {
	tests := []struct {
		name  string
		grant jit.Grant
		want  string
	}{
		{
			name: "plain grant is printed as is",
			grant: jit.Grant{
				ID: "g-abc", Policy: "pod-reader", Target: "demo", Namespace: "demo", User: "alice", Reason: "debug incident 42",
				State: jit.StateActive, ExpiresAt: at.Add(time.Hour), Approvals: []jit.Decision{{By: "bob", At: at}, {By: "carol", At: at, Comment: "ok for 1h"}},
			},
			want: "grant g-abc: ACTIVE (pod-reader on demo, namespace demo, for alice)\n" +
				"  active until 2026-11-26 10:00:00Z\n" +
				"  reason: debug incident 42\n" +
				"  approved by bob at 2026-11-26 09:00:00Z\n" +
				"  approved by carol at 2026-11-26 09:00:00Z: ok for 1h\n",
		},
		{
			name: "suspended grant says why",
			grant: jit.Grant{
				ID: "g-abc", Policy: "pod-reader", Target: "demo", Namespace: "demo", User: "alice", Reason: "r",
				State: jit.StateActive, ExpiresAt: at.Add(time.Hour), Suspended: `access policy "pod-reader" was removed`,
			},
			want: "grant g-abc: ACTIVE (pod-reader on demo, namespace demo, for alice)\n" +
				"  active until 2026-11-26 10:00:00Z\n" +
				"  suspended, in force for nothing until a policy set gives it again: access policy \"pod-reader\" was removed\n" +
				"  reason: r\n",
		},
		{
			name: "hostile active grant",
			grant: jit.Grant{
				ID: "g-\x1b]0;pwned\x07", Policy: "reader\n", Target: "demo\r", Namespace: "demo\x1b[31m", User: "alice\u202e",
				Reason: "look\nforged: line", State: jit.StateActive, ExpiresAt: at.Add(time.Hour),
				Approvals: []jit.Decision{{By: "bob\x1b[2J", At: at, Comment: "fine\nAPPROVED"}},
			},
			want: `grant "g-\x1b]0;pwned\a": ACTIVE ("reader\n" on "demo\r", namespace "demo\x1b[31m", for "alice\u202e")` + "\n" +
				"  active until 2026-11-26 10:00:00Z\n" +
				`  reason: "look\nforged: line"` + "\n" +
				`  approved by "bob\x1b[2J" at 2026-11-26 09:00:00Z: "fine\nAPPROVED"` + "\n",
		},
		{
			name: "hostile denied grant",
			grant: jit.Grant{
				ID: "g-abc", Policy: "pod-reader", Target: "demo", Namespace: "demo", User: "alice", Reason: "r",
				State: jit.StateDenied, EndedAt: at, EndedBy: "bob\x07", EndReason: "no\x1b]0;pwned\x07",
			},
			want: "grant g-abc: DENIED (pod-reader on demo, namespace demo, for alice)\n" +
				`  ended 2026-11-26 09:00:00Z by "bob\a": "no\x1b]0;pwned\a"` + "\n" +
				"  reason: r\n",
		},
		{
			name: "hostile pending grant",
			grant: jit.Grant{
				ID: "g-\n", Policy: "pod-reader", Target: "demo", Namespace: "demo", User: "alice", Reason: "r",
				State: jit.StatePending, RequiredApprovals: 2, PendingUntil: at.Add(10 * time.Minute),
			},
			want: `grant "g-\n": PENDING (pod-reader on demo, namespace demo, for alice)` + "\n" +
				`  waiting for 2 of 2 approvals until 2026-11-26 09:10:00Z; an approver runs: jitproxy grant approve "g-\n"` + "\n" +
				"  reason: r\n",
		},
		{
			name:  "hostile state",
			grant: jit.Grant{ID: "g-abc", Policy: "pod-reader", Target: "demo", User: "alice", Reason: "r", State: "ACTIVE\x1b[2J"},
			want: `grant g-abc: "ACTIVE\x1b[2J" (pod-reader on demo, cluster-wide, for alice)` + "\n" +
				"  reason: r\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := printGrant(&out, "text", &tt.grant); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.want, out.String()); diff != "" {
				t.Errorf("printGrant() (-want +got):\n%s", diff)
			}
			checkTerminalSafe(t, out.String(), strings.Count(tt.want, "\n"))
		})
	}
}

func TestPrintTablesEscape(t *testing.T) {
	grants := []*jit.Grant{
		{ID: "g-abc", Policy: "pod-reader", User: "alice", Namespace: "demo", State: jit.StateActive, ExpiresAt: at},
		{ID: "g-\x1b]0;pwned\x07", Policy: "reader\n", User: "alice\x07", Namespace: "ns\r", State: "ACTIVE\x1b[2J"},
	}
	policies := []jit.PolicyView{
		{Name: "pod-reader", Target: "demo", Namespaces: []string{"demo"}, DefaultDuration: "15m0s", MaxDuration: "1h0m0s", Description: "read pods"},
		{
			Name: "reader\x1b]0;pwned\x07", Target: "demo\n", Namespaces: []string{"demo", "x\x1b[31m"},
			DefaultDuration: "15m\r", MaxDuration: "1h\t", Description: "reads\npods",
		},
	}
	tests := []struct {
		name      string
		print     func(w *bytes.Buffer) error
		wantLines int
		want      []string
	}{
		{
			name:      "grant list",
			print:     func(w *bytes.Buffer) error { return printGrants(w, "text", grants) },
			wantLines: 3,
			want: []string{
				"g-abc", "pod-reader", "2026-11-26 09:00:00Z",
				`"g-\x1b]0;pwned\a"`, `"reader\n"`, `"alice\a"`, `"ns\r"`, `"ACTIVE\x1b[2J"`,
			},
		},
		{
			name: "lock list",
			print: func(w *bytes.Buffer) error {
				return printLocks(w, "text", []*jit.Lock{
					{ID: "l-abc", Agent: "claude", CreatedBy: "root", Reason: "incident 7", ExpiresAt: at},
					{ID: "l-\x1b[2J", User: "bob\x07", CreatedBy: "root\n", Reason: "stop\r\nnow"},
				})
			},
			wantLines: 3,
			want: []string{
				"l-abc", "agent claude", "2026-11-26 09:00:00Z", "incident 7", "when removed",
				`"l-\x1b[2J"`, `user "bob\a"`, `"root\n"`, `"stop\r\nnow"`,
			},
		},
		{
			name:      "policy list",
			print:     func(w *bytes.Buffer) error { return printPolicies(w, "text", policies) },
			wantLines: 3,
			want: []string{
				"pod-reader", "read pods",
				`"reader\x1b]0;pwned\a"`, `"demo\n"`, `demo,"x\x1b[31m"`, `"15m\r"`, `"1h\t"`, `"reads\npods"`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			if err := tt.print(&out); err != nil {
				t.Fatal(err)
			}
			checkTerminalSafe(t, out.String(), tt.wantLines)
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output does not contain %s:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestSessionCreateEscapes(t *testing.T) {
	ans := jit.SessionAnswer{
		Session: &jit.Session{
			ID: "s-\x1b]0;pwned\x07", Agent: "claude\nrm -rf ~", User: "alice\x1b[31m", ExpiresAt: at,
		},
		ProxyURL: "http://s-abc:secret@127.0.0.1:8080", CACertPEM: "CA PEM",
	}
	c := fakeAdmin(t, http.StatusCreated, ans)
	envFile := filepath.Join(t.TempDir(), "agent.env")
	var out bytes.Buffer
	if err := sessionCreate(context.Background(), c, "text", &out, sessionFlags{agent: "a", user: "u", envFile: envFile}, "http://127.0.0.1:8081"); err != nil {
		t.Fatal(err)
	}
	want := `session "s-\x1b]0;pwned\a": agent "claude\nrm -rf ~" for user "alice\x1b[31m" until 2026-11-26 09:00:00Z` + "\n"
	if first, _, _ := strings.Cut(out.String(), "\n"); first+"\n" != want {
		t.Errorf("first line = %q, want %q", first+"\n", want)
	}
	checkTerminalSafe(t, out.String(), 3) // the session, the CA file and the env file written
	env, err := os.ReadFile(envFile)
	if err != nil {
		t.Fatal(err)
	}
	checkTerminalSafe(t, string(env), 8)
	if !strings.HasPrefix(string(env), `# Environment of jitproxy session "s-\x1b]0;pwned\a" (agent "claude\nrm -rf ~", user "alice\x1b[31m").`) {
		t.Errorf("env file comment:\n%s", env)
	}
}

// TestEnvFileRunsNothing sources an env file whose proxy URL, from a hostile
// admin API, holds shell syntax: the value arrives as it was, and nothing
// runs.
func TestEnvFileRunsNothing(t *testing.T) {
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	hostile := "http://s-abc:x$(touch " + marker + ")`touch " + marker + "`'\"$HOME@127.0.0.1:8080"
	c := fakeAdmin(t, http.StatusCreated, jit.SessionAnswer{Session: &jit.Session{ID: "s-abc", Agent: "a", User: "u", ExpiresAt: at}, ProxyURL: hostile})
	envFile := filepath.Join(dir, "agent.env")
	if err := sessionCreate(context.Background(), c, "text", io.Discard, sessionFlags{agent: "a", user: "u", envFile: envFile}, "http://127.0.0.1:8081"); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("sh", "-c", `. "$1" && printf '%s' "$HTTPS_PROXY"`, "sh", envFile).CombinedOutput()
	if err != nil {
		t.Fatalf("sourcing the env file: %v\n%s", err, out)
	}
	if string(out) != hostile {
		t.Errorf("HTTPS_PROXY = %q, want %q", out, hostile)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Error("sourcing the env file ran a command")
	}
}

// FuzzEsc checks that esc leaves printable text alone and turns anything
// else into printable text that unquotes to the original.
func FuzzEsc(f *testing.F) {
	f.Add("alice")
	f.Add("\x1b]0;pwned\x07")
	f.Add("a\nb\xff\u202e\u009b")
	f.Fuzz(func(t *testing.T, s string) {
		got := esc(s)
		checkTerminalSafe(t, got+"\n", 1)
		if got == s {
			return
		}
		if u, err := strconv.Unquote(got); err != nil || u != s {
			t.Errorf("esc(%q) = %s, which unquotes to %q, %v", s, got, u, err)
		}
	})
}

func TestPrintDryRun(t *testing.T) {
	g := &jit.Grant{
		Policy: "namespace-editor", PolicyVersion: "3f2a9b0c1d2e", Target: "demo", Namespace: "demo", User: "dev",
		State: jit.StatePending, RequiredApprovals: 1, Approvers: jit.Subjects{Groups: []string{"sre"}},
		PendingUntil: at, Duration: 30 * time.Minute,
		Permissions: []access.Permission{{Kubernetes: &access.KubernetesPermission{Verbs: []string{"get", "patch"}, APIGroups: []string{"apps"}, Resources: []string{"deployments"}, ResourceNames: []string{"web\x1b[2J"}}}},
		Conditions: &jit.Conditions{
			Windows:        []jit.Window{{Days: []string{"mon"}, Hours: "08:00-19:00", TimeZone: "Europe/Berlin"}},
			SourceNetworks: []string{"10.20.0.0/16"}, AuthMethods: []string{"proxy-basic"},
		},
	}
	var out bytes.Buffer
	if err := printDryRun(&out, "text", g); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"dry run: the request would be accepted (nothing was requested)",
		"grant under namespace-editor (version 3f2a9b0c1d2e) on demo, namespace demo, for dev",
		"then waits for 1 approval from sre until 2026-11-26 09:00:00Z; active for 30m0s once approved",
		"usable only mon 08:00-19:00 Europe/Berlin", "usable only from 10.20.0.0/16", "authenticated with proxy-basic",
		`may get, patch "deployments in API groups apps named web\x1b[2J"`,
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run without %q:\n%s", want, out.String())
		}
	}
	checkTerminalSafe(t, out.String(), 7)
}

// TestPrintDryRunEndsEarly: a grant its window ends early says until when.
func TestPrintDryRunEndsEarly(t *testing.T) {
	g := &jit.Grant{
		Policy: "namespace-editor", Target: "demo", Namespace: "demo", User: "dev",
		State: jit.StateActive, ActivatedAt: at, ExpiresAt: at.Add(10 * time.Minute), Duration: 30 * time.Minute,
		Conditions: &jit.Conditions{Windows: []jit.Window{{Hours: "08:00-09:10"}}, EndOutsideWindows: true},
	}
	var out bytes.Buffer
	if err := printDryRun(&out, "text", g); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"active at once, until 2026-11-26 09:10:00Z, when its window closes (asked for 30m0s)", "ends early when its windows close"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("dry run without %q:\n%s", want, out.String())
		}
	}
}
