package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/audittest"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
)

// Rego policies of the reload tests: a grant permits what its kubernetes
// permissions name by verb, and the variants forbid deletes or do not
// parse.
const (
	regoPermit = `package jitproxy.authz

permit contains g.id if {
	some g in input.grants
	some p in g.permissions
	input.action.kubernetes.verb in p.kubernetes.verbs
}
`
	regoForbidDelete = `package jitproxy.authz

forbid contains "deletes are frozen" if input.action.kubernetes.verb == "delete"
`
	regoBroken = `package jitproxy.authz

forbid contains "unfinished" if {
`
)

// accessPolicy is an access policy named name on target demo, for the
// given permissions, lasting at most max.
func accessPolicy(name, perms, max, provider string) string {
	return "apiVersion: jitproxy.dev/v1alpha1\nkind: AccessPolicy\nmetadata: {name: " + name + "}\nspec:\n  target: demo\n" +
		"  subjects: {groups: [developers]}\n  namespaces: [demo]\n  permissions: " + perms + "\n" +
		"  duration: {max: " + max + "}\n  credential: {provider: " + provider + ", options: {serviceAccount: reader}}\n"
}

var (
	podReader      = accessPolicy("pod-reader", `[{verbs: [get, list, delete], apiGroups: [""], resources: [pods]}]`, "1h", "tokenrequest")
	podReaderLong  = accessPolicy("pod-reader", `[{verbs: [get, list, delete], apiGroups: [""], resources: [pods]}]`, "2h", "tokenrequest")
	podReaderNoMax = accessPolicy("pod-reader", `[{verbs: [get], apiGroups: [""], resources: [pods]}]`, "0s", "tokenrequest")
	podReaderAWS   = strings.Replace(accessPolicy("pod-reader", `[{actions: ["s3:GetObject"], resources: ["*"]}]`, "1h", "tokenrequest"), "  namespaces: [demo]\n", "", 1)
	podReaderVault = accessPolicy("pod-reader", `[{verbs: [get], apiGroups: [""], resources: [pods]}]`, "1h", "vault")
)

// reloadEnv is a policyLoader over two directories of policy files,
// started with regoPermit and podReader, with target demo (kubernetes,
// provider tokenrequest).
type reloadEnv struct {
	t         *testing.T
	authzDir  string
	accessDir string
	loader    *policyLoader
	live      *livePolicies
	audit     *audittest.Log
	log       *lockedBuffer
}

func newReloadEnv(t *testing.T) *reloadEnv {
	t.Helper()
	dir := t.TempDir()
	e := &reloadEnv{t: t, authzDir: filepath.Join(dir, "authz"), accessDir: filepath.Join(dir, "access"),
		live: &livePolicies{}, audit: &audittest.Log{}, log: &lockedBuffer{}}
	e.write("authz/authz.rego", regoPermit)
	e.write("access/pod-reader.yaml", podReader)
	e.loader = &policyLoader{
		sources: policySources{authzDir: e.authzDir, accessDir: e.accessDir},
		targets: &builtTargets{
			providers: map[string]broker.Provider{"demo/tokenrequest": anyOptions{}},
			infos:     []jit.TargetInfo{{Name: "demo", Kind: "kubernetes"}},
			names:     []string{"demo"},
		},
		live: e.live, audit: e.audit, log: slog.New(slog.NewJSONHandler(e.log, nil)),
	}
	if err := e.loader.start(t.Context()); err != nil {
		t.Fatal(err)
	}
	return e
}

// write writes a file under the environment's directory; remove removes one.
func (e *reloadEnv) write(name, data string) {
	e.t.Helper()
	p := filepath.Join(filepath.Dir(e.authzDir), name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		e.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(data), 0o644); err != nil {
		e.t.Fatal(err)
	}
}

func (e *reloadEnv) remove(name string) {
	e.t.Helper()
	if err := os.RemoveAll(filepath.Join(filepath.Dir(e.authzDir), name)); err != nil {
		e.t.Fatal(err)
	}
}

// decide asks the policies in force, as the proxy does for a request,
// whether the caller with a grant under pod-reader may do verb to pods.
func (e *reloadEnv) decide(verb string) authz.Decision {
	e.t.Helper()
	set := e.live.Policies()
	p := set.Access.(*jit.Policies).Get("pod-reader")
	in := authz.Input{
		Caller: access.Caller{Session: "s-1", User: "dev", Groups: []string{"developers"}},
		Action: access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "GET",
			Kubernetes: &access.KubernetesAction{Verb: verb, ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		Grants: authz.NewGrantSet(authz.Grant{ID: "g-1", Policy: p.Name, Target: "demo", Namespace: "demo", Permissions: p.Permissions}),
	}
	d, err := set.Decider.Decide(e.t.Context(), in)
	if err != nil {
		e.t.Fatal(err)
	}
	return d
}

// policyEvent is what the reload tests compare of a policy event.
type policyEvent struct {
	Type, Trigger string
	Access        []string // name@version, nil when not parsed
	Digest        bool     // whether the Rego digest is named
	Error         string   // Outcome.Error, or "" without an outcome
}

func summarize(evs []audit.Event) []policyEvent {
	var out []policyEvent
	for _, e := range evs {
		pe := policyEvent{Type: e.Type, Trigger: e.Policies.Trigger, Digest: e.Policies.AuthzDigest != ""}
		if e.Policies.Access != nil {
			pe.Access = []string{}
			for _, v := range e.Policies.Access {
				pe.Access = append(pe.Access, v.Name+"@"+v.Version)
			}
		}
		if e.Outcome != nil {
			pe.Error = e.Outcome.Error
		}
		out = append(out, pe)
	}
	return out
}

// versionOf is the version of an access policy document.
func versionOf(t *testing.T, doc string) string {
	t.Helper()
	ps, err := jit.ParsePolicies("p.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	return ps[0].Name + "@" + ps[0].Version
}

// TestPolicyReload: a reload puts a new set in force only when the whole of
// it compiles and validates; otherwise the set in force stays, the same
// engine and access policies, and the error is logged and audited. Every
// attempt is an event naming what was read.
func TestPolicyReload(t *testing.T) {
	v1, v2 := versionOf(t, podReader), versionOf(t, podReaderLong)
	loaded := func(trigger string, access ...string) policyEvent {
		return policyEvent{Type: audit.TypePolicyLoaded, Trigger: trigger, Access: access, Digest: true}
	}
	tests := []struct {
		name   string
		change func(e *reloadEnv)
		// wantErr is in the error returned, the log and the event.
		wantErr string
		// swapped: the set in force is a new one.
		swapped bool
		// wantDelete is whether the caller may delete pods afterwards
		// (allowed before).
		wantDelete bool
		// wantVersion is pod-reader's version in force afterwards.
		wantVersion string
		// wantEvent is the reload's event, after the start's.
		wantEvent policyEvent
	}{
		{
			name:    "a Rego change is put in force",
			change:  func(e *reloadEnv) { e.write("authz/freeze.rego", regoForbidDelete) },
			swapped: true, wantDelete: false, wantVersion: v1,
			wantEvent: loaded(audit.TriggerSignal, v1),
		},
		{
			name:    "an access policy change is put in force",
			change:  func(e *reloadEnv) { e.write("access/pod-reader.yaml", podReaderLong) },
			swapped: true, wantDelete: true, wantVersion: v2,
			wantEvent: loaded(audit.TriggerSignal, v2),
		},
		{
			name: "both changed at once are put in force together",
			change: func(e *reloadEnv) {
				e.write("authz/freeze.rego", regoForbidDelete)
				e.write("access/pod-reader.yaml", podReaderLong)
			},
			swapped: true, wantDelete: false, wantVersion: v2,
			wantEvent: loaded(audit.TriggerSignal, v2),
		},
		{
			name: "nothing changed: a new set all the same",
			// SIGHUP reloads what is there, with a new engine and cache.
			change:  func(*reloadEnv) {},
			swapped: true, wantDelete: true, wantVersion: v1,
			wantEvent: loaded(audit.TriggerSignal, v1),
		},
		{
			name:    "broken Rego keeps the old set",
			change:  func(e *reloadEnv) { e.write("authz/freeze.rego", regoBroken) },
			wantErr: "freeze.rego:4: rego_parse_error", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Access: []string{v1}, Digest: true},
		},
		{
			name:    "Rego without a permit rule keeps the old set",
			change:  func(e *reloadEnv) { e.write("authz/authz.rego", regoForbidDelete) },
			wantErr: "no policy defines data.jitproxy.authz.permit", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Access: []string{v1}, Digest: true},
		},
		{
			name:    "a broken access policy keeps the old set",
			change:  func(e *reloadEnv) { e.write("access/pod-reader.yaml", podReaderNoMax) },
			wantErr: "spec.duration.max must be a positive duration", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Digest: true},
		},
		{
			name:    "an access policy that does not fit its target keeps the old set",
			change:  func(e *reloadEnv) { e.write("access/pod-reader.yaml", podReaderAWS) },
			wantErr: "its permissions are for targets of kind aws, and target demo is of kind kubernetes", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Access: []string{versionOf(t, podReaderAWS)}, Digest: true},
		},
		{
			name:    "an access policy naming a provider the target lacks keeps the old set",
			change:  func(e *reloadEnv) { e.write("access/pod-reader.yaml", podReaderVault) },
			wantErr: `no credential provider "vault" for target demo`, wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Access: []string{versionOf(t, podReaderVault)}, Digest: true},
		},
		{
			name:    "a second access policy of the same name keeps the old set",
			change:  func(e *reloadEnv) { e.write("access/again.yml", podReaderLong) },
			wantErr: `access policy "pod-reader" is defined twice`, wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Digest: true},
		},
		{
			name: "valid Rego with a broken access policy: neither is put in force",
			change: func(e *reloadEnv) {
				e.write("authz/freeze.rego", regoForbidDelete)
				e.write("access/pod-reader.yaml", podReaderNoMax)
			},
			wantErr: "spec.duration.max must be a positive duration", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Digest: true},
		},
		{
			name: "a valid access policy with broken Rego: neither is put in force",
			change: func(e *reloadEnv) {
				e.write("authz/freeze.rego", regoBroken)
				e.write("access/pod-reader.yaml", podReaderLong)
			},
			wantErr: "rego_parse_error", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal, Access: []string{v2}, Digest: true},
		},
		{
			name:    "an unreadable directory keeps the old set",
			change:  func(e *reloadEnv) { e.remove("access") },
			wantErr: "read the access policies", wantDelete: true, wantVersion: v1,
			wantEvent: policyEvent{Type: audit.TypePolicyRejected, Trigger: audit.TriggerSignal},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newReloadEnv(t)
			before := e.live.cur.Load()
			if d := e.decide("delete"); !d.Allowed {
				t.Fatalf("before the reload, delete = %+v; want allowed", d)
			}
			tt.change(e)
			err := e.loader.reload(t.Context(), audit.TriggerSignal)

			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("reload() = %v, want an error containing %q", err, tt.wantErr)
			}
			now := e.live.cur.Load()
			if got := now != before; got != tt.swapped {
				t.Errorf("a new set is in force: %v, want %v", got, tt.swapped)
			}
			if !tt.swapped && (now.engine != before.engine || now.access != before.access) {
				t.Error("a part of the set in force changed")
			}
			if d := e.decide("delete"); d.Allowed != tt.wantDelete {
				t.Errorf("after the reload, delete = %+v; want allowed %v", d, tt.wantDelete)
			}
			if p := e.live.AccessPolicies().Get("pod-reader"); p.Name+"@"+p.Version != tt.wantVersion {
				t.Errorf("pod-reader in force is %s@%s, want %s", p.Name, p.Version, tt.wantVersion)
			}
			want := []policyEvent{loaded(audit.TriggerStartup, v1), tt.wantEvent}
			got := summarize(e.audit.Events())
			if len(got) == 2 && tt.wantErr != "" {
				// The event carries the error on one line; compared below.
				if !strings.Contains(got[1].Error, tt.wantErr) || strings.Contains(got[1].Error, "\n") {
					t.Errorf("event error %q, want one line containing %q", got[1].Error, tt.wantErr)
				}
				got[1].Error = ""
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			logged := strings.Contains(e.log.String(), "policies not reloaded: the set in force stays")
			if logged != (tt.wantErr != "") || tt.wantErr != "" && !strings.Contains(e.log.String(), strings.ReplaceAll(tt.wantErr, `"`, `\"`)) {
				t.Errorf("log (error logged: %v, want %v):\n%s", logged, tt.wantErr != "", e.log.String())
			}
		})
	}
}

// TestPolicyReloadNeedsAudit: a set whose policy.loaded event cannot be
// recorded is not put in force, and a poll tries the same files again
// once the audit can record.
func TestPolicyReloadNeedsAudit(t *testing.T) {
	e := newReloadEnv(t)
	before := e.live.cur.Load()
	e.write("authz/freeze.rego", regoForbidDelete)
	e.audit.FailWith(errors.New("spool full"))
	if err := e.loader.reload(t.Context(), audit.TriggerSignal); err == nil || !strings.Contains(err.Error(), "spool full") {
		t.Errorf("reload() = %v, want the audit's error", err)
	}
	if e.live.cur.Load() != before || !e.decide("delete").Allowed {
		t.Fatal("a set whose event was not recorded is in force")
	}
	if !strings.Contains(e.log.String(), "the audit cannot record the change") {
		t.Errorf("log:\n%s", e.log.String())
	}
	e.audit.FailWith(nil)
	e.loader.poll(t.Context())
	if e.live.cur.Load() == before || e.decide("delete").Allowed {
		t.Error("the poll after the audit recovered did not put the set in force")
	}
	if diff := cmp.Diff([]string{audit.TypePolicyLoaded, audit.TypePolicyLoaded}, e.audit.Types()); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestPolicyPoll: a poll reloads when a file changed, added or removed,
// once per change: files it already tried, good or bad, are not tried
// again.
func TestPolicyPoll(t *testing.T) {
	e := newReloadEnv(t)
	v1, v2 := versionOf(t, podReader), versionOf(t, podReaderLong)
	steps := []struct {
		name   string
		change func()
		want   []policyEvent // the events of this poll
	}{
		{"nothing changed", func() {}, nil},
		{"a file rewritten as it was", func() { e.write("authz/authz.rego", regoPermit) }, nil},
		{"a Rego file added", func() { e.write("authz/freeze.rego", regoForbidDelete) },
			[]policyEvent{{Type: audit.TypePolicyLoaded, Trigger: audit.TriggerFileChange, Access: []string{v1}, Digest: true}}},
		{"a file that is not a policy", func() { e.write("authz/README.md", "notes") }, nil},
		{"an access policy broken", func() { e.write("access/pod-reader.yaml", podReaderNoMax) },
			[]policyEvent{{Type: audit.TypePolicyRejected, Trigger: audit.TriggerFileChange, Digest: true}}},
		{"still broken", func() {}, nil},
		{"mended", func() { e.write("access/pod-reader.yaml", podReaderLong) },
			[]policyEvent{{Type: audit.TypePolicyLoaded, Trigger: audit.TriggerFileChange, Access: []string{v2}, Digest: true}}},
		{"the directory removed", func() { e.remove("access") },
			[]policyEvent{{Type: audit.TypePolicyRejected, Trigger: audit.TriggerFileChange}}},
		{"still removed", func() {}, nil},
		{"back", func() { e.write("access/pod-reader.yaml", podReader) },
			[]policyEvent{{Type: audit.TypePolicyLoaded, Trigger: audit.TriggerFileChange, Access: []string{v1}, Digest: true}}},
		{"a Rego file removed", func() { e.remove("authz/freeze.rego") },
			[]policyEvent{{Type: audit.TypePolicyLoaded, Trigger: audit.TriggerFileChange, Access: []string{v1}, Digest: true}}},
	}
	seen := len(e.audit.Events())
	for _, st := range steps {
		st.change()
		e.loader.poll(t.Context())
		evs := e.audit.Events()[seen:]
		seen += len(evs)
		got := summarize(evs)
		for i := range got {
			got[i].Error = ""
		}
		if diff := cmp.Diff(st.want, got); diff != "" {
			t.Errorf("%s: events (-want +got):\n%s", st.name, diff)
		}
	}
	if !e.decide("delete").Allowed {
		t.Error("the freeze is still in force after its file was removed")
	}
}

// TestPolicyConfigMapVolume: policies in a Kubernetes ConfigMap volume
// (files linked through ..data to a ..TIMESTAMP directory) load once each,
// and the kubelet's update (a new directory, ..data swapped to it by a
// rename) is reloaded by a poll.
func TestPolicyConfigMapVolume(t *testing.T) {
	e := newReloadEnv(t)
	// version lays out one version of the ConfigMap as the kubelet does and
	// points ..data at it.
	version := func(ts, doc string) {
		t.Helper()
		dir := filepath.Join(e.accessDir, ".."+ts)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "pod-reader.yaml"), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		tmp := filepath.Join(e.accessDir, "..data_tmp")
		if err := os.Symlink(".."+ts, tmp); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, filepath.Join(e.accessDir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	e.remove("access/pod-reader.yaml")
	version("2026_11_29_10_00_00.1", podReader)
	if err := os.Symlink("..data/pod-reader.yaml", filepath.Join(e.accessDir, "pod-reader.yaml")); err != nil {
		t.Fatal(err)
	}
	if err := e.loader.reload(t.Context(), audit.TriggerSignal); err != nil {
		t.Fatalf("reload of a ConfigMap volume: %v", err)
	}
	version("2026_11_29_10_05_00.2", podReaderLong)
	e.loader.poll(t.Context())
	want := versionOf(t, podReaderLong)
	if p := e.live.AccessPolicies().Get("pod-reader"); p.Name+"@"+p.Version != want {
		t.Errorf("pod-reader in force is %s@%s after the ConfigMap's update, want %s", p.Name, p.Version, want)
	}
}

// TestPolicyReloadRun: run reloads on SIGHUP and when files change, and
// returns nil when its context ends. Nothing is timed: the test waits for
// each event.
func TestPolicyReloadRun(t *testing.T) {
	e := newReloadEnv(t)
	ctx, cancel := context.WithCancel(t.Context())
	hup := make(chan os.Signal, 1)
	done := make(chan error, 1)
	go func() { done <- e.loader.run(ctx, hup, 10*time.Millisecond) }()
	waitFor := func(what string, n int) []audit.Event {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			if evs := e.audit.Events(); len(evs) >= n {
				return evs
			}
			if time.Now().After(deadline) {
				t.Fatalf("no %s: events %v", what, e.audit.Types())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	e.write("authz/freeze.rego", regoForbidDelete)
	if ev := waitFor("reload after the file change", 2)[1]; ev.Type != audit.TypePolicyLoaded || ev.Policies.Trigger != audit.TriggerFileChange {
		t.Errorf("event %s (%s), want policy.loaded (file_change)", ev.Type, ev.Policies.Trigger)
	}
	hup <- syscall.SIGHUP
	if ev := waitFor("reload after SIGHUP", 3)[2]; ev.Type != audit.TypePolicyLoaded || ev.Policies.Trigger != audit.TriggerSignal {
		t.Errorf("event %s (%s), want policy.loaded (sighup)", ev.Type, ev.Policies.Trigger)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("run() = %v", err)
	}
}

// TestPolicyEvent: the event of a set names where it came from, every
// access policy's version and a digest of the Rego files (tests included)
// that changes with any of them.
func TestPolicyEvent(t *testing.T) {
	read := func(authzFS fstest.MapFS) *policyFiles {
		t.Helper()
		a, err := readTree(authzFS, ".rego")
		if err != nil {
			t.Fatal(err)
		}
		return &policyFiles{authz: a, authzDigest: a.digest()}
	}
	ps, err := jit.LoadPolicies(policies.Access())
	if err != nil {
		t.Fatal(err)
	}
	l := &policyLoader{sources: policySources{accessDir: "/etc/jitproxy/access"}}
	a := read(fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\n")}, "a_test.rego": {Data: []byte("package x\n")}})
	b := read(fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\n\n")}, "a_test.rego": {Data: []byte("package x\n")}})
	c := read(fstest.MapFS{"a.rego": {Data: []byte("package jitproxy.authz\n")}, "a_test.rego": {Data: []byte("package y\n")}})
	ea := l.event(audit.TypePolicyLoaded, audit.TriggerStartup, a, ps, nil)
	if len(ea.Policies.Access) != len(ps.All()) || ea.Policies.Access[0].Version == "" || ea.Outcome != nil {
		t.Errorf("event = %+v", ea)
	}
	if ea.Policies.AuthzSource != "embedded" || ea.Policies.AccessSource != "/etc/jitproxy/access" || ea.Policies.Trigger != audit.TriggerStartup {
		t.Errorf("sources and trigger = %+v", ea.Policies)
	}
	if a.authzDigest == b.authzDigest || a.authzDigest == c.authzDigest {
		t.Error("the digest does not change with a Rego file")
	}
	none := l.event(audit.TypePolicyRejected, audit.TriggerSignal, nil, nil, errors.New("read the Rego policies: no such directory"))
	if diff := cmp.Diff(&audit.PolicySet{AuthzSource: "embedded", AccessSource: "/etc/jitproxy/access", Trigger: audit.TriggerSignal}, none.Policies); diff != "" {
		t.Errorf("policies of an unread set (-want +got):\n%s", diff)
	}
	if none.Outcome == nil || none.Outcome.Error != "read the Rego policies: no such directory" {
		t.Errorf("outcome = %+v", none.Outcome)
	}
}

// TestAuditError: the error of a rejected set is one line, without the
// source OPA quotes, and bounded.
func TestAuditError(t *testing.T) {
	_, parseErr := newEngine(t.Context(), fstest.MapFS{"x.rego": {Data: []byte(regoBroken)}})
	long := strings.Repeat("é", maxAuditErrorBytes)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"one line", errors.New("access policy \"p\": spec.target is required"), "access policy \"p\": spec.target is required"},
		{"joined", errors.Join(errors.New("a.yaml: document 1: bad"), errors.New("b.yaml: document 2: worse")), "a.yaml: document 1: bad; b.yaml: document 2: worse"},
		{"yaml's indented lines are kept", errors.New("yaml: unmarshal errors:\n  line 3: field x not found"), "yaml: unmarshal errors:; line 3: field x not found"},
		{"OPA's quoted source is left out", parseErr, "authz: load policies: 1 error occurred: x.rego:4: rego_parse_error: unexpected eof token"},
		{"bounded, valid UTF-8", errors.New(long), long[:maxAuditErrorBytes] + "..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, auditError(tt.err)); diff != "" {
				t.Errorf("auditError(%q) (-want +got):\n%s", tt.err, diff)
			}
		})
	}
}

// TestPolicyReloadJudgesGrants: a set put in force has the grants judged
// against it (policies.on_change); a refused one does not.
func TestPolicyReloadJudgesGrants(t *testing.T) {
	e := newReloadEnv(t)
	judged := 0
	e.loader.changed = func(context.Context) { judged++ }
	e.write("authz/broken.rego", "package jitproxy.authz\npermit contains x if {")
	e.loader.reload(t.Context(), audit.TriggerSignal)
	if judged != 0 {
		t.Errorf("a refused set had the grants judged %d times", judged)
	}
	e.remove("authz/broken.rego")
	e.write("authz/freeze.rego", regoForbidDelete)
	if err := e.loader.reload(t.Context(), audit.TriggerSignal); err != nil {
		t.Fatal(err)
	}
	if judged != 1 {
		t.Errorf("a set put in force had the grants judged %d times, want 1", judged)
	}
}
