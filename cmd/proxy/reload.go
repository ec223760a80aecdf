package main

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"sync/atomic"
	"testing/fstest"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
)

// Policies are loaded at start and again, without a restart, on SIGHUP or
// when their files change. A load reads every policy file once, into
// memory, and compiles and validates the whole set from what it read: the
// Rego by a new authz.Engine (with its own, empty decision cache), the
// access policies as at start, against the configured targets. Only when
// both succeed, and the policy.loaded event naming them is recorded, does
// the new set replace the old, with one atomic store: requests that arrive
// after it use the new set, requests in flight finish with the set they
// arrived under (intercept takes the set once per request), and nothing
// keeps the old engine. On any error the old set stays in force, and the
// error is logged and recorded as a policy.rejected event.

// policySources says where the policies come from: a directory each, or,
// when empty, the embedded ones; and the directory of the shadow Rego
// policies, none when empty.
type policySources struct {
	authzDir, accessDir string
	shadowAuthzDir      string
}

func sourcesOf(cfg Config) policySources {
	return policySources{authzDir: cfg.Policies.AuthzDir, accessDir: cfg.Policies.AccessDir, shadowAuthzDir: cfg.Policies.ShadowAuthzDir}
}

// onDisk reports whether any set is read from a directory, whose files
// can change.
func (s policySources) onDisk() bool {
	return s.authzDir != "" || s.accessDir != "" || s.shadowAuthzDir != ""
}

// policyTree is the files of one set, as read: the .rego files of the
// authorization policies, or the .yaml and .yml files of the access
// policies.
type policyTree struct {
	files fstest.MapFS
	names []string // in the order fs.WalkDir visited them
}

// policyFiles are both sets of policy files as read at one moment: what a
// load compiles, and what its audit event names, so that the event names
// exactly what was put in force.
type policyFiles struct {
	authz, access policyTree
	// shadow is the shadow Rego policies; nil files when there are none.
	shadow policyTree
	// shadowDigest is the SHA-256 of the shadow .rego files, like
	// authzDigest; "" when there are none.
	shadowDigest string
	// authzDigest is the SHA-256 of the .rego files, tests included, by
	// name and content.
	authzDigest string
	// fingerprint changes when any file of either set does.
	fingerprint string
}

// read reads every policy file of both sets.
func (s policySources) read() (*policyFiles, error) {
	var f policyFiles
	var err error
	if f.authz, err = readTree(dirOr(s.authzDir, policies.Authz()), ".rego"); err != nil {
		return nil, fmt.Errorf("read the Rego policies: %w", err)
	}
	if f.access, err = readTree(dirOr(s.accessDir, policies.Access()), ".yaml", ".yml"); err != nil {
		return nil, fmt.Errorf("read the access policies: %w", err)
	}
	if s.shadowAuthzDir != "" {
		if f.shadow, err = readTree(os.DirFS(s.shadowAuthzDir), ".rego"); err != nil {
			return nil, fmt.Errorf("read the shadow Rego policies: %w", err)
		}
		f.shadowDigest = f.shadow.digest()
	}
	f.authzDigest = f.authz.digest()
	f.fingerprint = f.authzDigest + "/" + f.access.digest() + "/" + f.shadowDigest
	return &f, nil
}

// readTree reads the files of fsys, at any depth, whose names end in one
// of exts: those the loaders read. Directories whose names begin with a
// dot are skipped: a Kubernetes ConfigMap volume keeps each version of its
// files in a ..TIMESTAMP directory, beside the files themselves (links
// through ..data to the current version), which would otherwise be read
// twice; and a .git or .github directory holds no policies.
func readTree(fsys fs.FS, exts ...string) (policyTree, error) {
	t := policyTree{files: fstest.MapFS{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != "." && strings.HasPrefix(d.Name(), ".") {
			return fs.SkipDir
		}
		if d.IsDir() || !slices.Contains(exts, path.Ext(p)) {
			return nil
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		t.files[p] = &fstest.MapFile{Data: b, Mode: 0o444}
		t.names = append(t.names, p)
		return nil
	})
	return t, err
}

// digest is the SHA-256 of the files by name and content, in the order
// they were read.
func (t policyTree) digest() string {
	h := sha256.New()
	for _, p := range t.names {
		b := t.files[p].Data
		fmt.Fprintf(h, "%s\x00%d\x00", p, len(b))
		h.Write(b)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// policyGeneration is a set of policies in force together. It is
// immutable.
type policyGeneration struct {
	engine *authz.Engine
	access *jit.Policies
	shadow *authz.Engine // nil: no shadow set
}

// livePolicies holds the policies in force. It is the PolicySource of both
// the proxy and the jit service, which read the one pointer: a reload
// changes both at once. It is safe for concurrent use.
type livePolicies struct {
	cur atomic.Pointer[policyGeneration]
}

// Policies returns the policies in force, for a proxied request.
func (l *livePolicies) Policies() intercept.PolicySet {
	g := l.cur.Load()
	ps := intercept.PolicySet{Decider: g.engine, Access: g.access}
	if g.shadow != nil {
		ps.Shadow = g.shadow
	}
	return ps
}

// loaded returns an error while no Rego policies are in force.
func (l *livePolicies) loaded() error {
	if g := l.cur.Load(); g == nil || g.engine == nil {
		return errors.New("no authorization policies are loaded")
	}
	return nil
}

// AccessPolicies returns the access policies in force, for the jit service.
func (l *livePolicies) AccessPolicies() *jit.Policies { return l.cur.Load().access }

// AutoApprove evaluates the auto-approval rules of the Rego policies in
// force, for the jit service.
func (l *livePolicies) AutoApprove(ctx context.Context, input any) ([]string, error) {
	return l.cur.Load().engine.AutoApprove(ctx, input)
}

// policyAuditor records the policy events.
type policyAuditor interface {
	Record(ctx context.Context, e audit.Event) error
}

// policyLoader loads the policies into a livePolicies: at start, on
// SIGHUP, and when their files change. Its methods must not be called
// concurrently: run calls them from one goroutine.
type policyLoader struct {
	sources policySources
	// targets are the configured targets the access policies are checked
	// against.
	targets *builtTargets
	live    *livePolicies
	audit   policyAuditor
	log     *slog.Logger
	// tried is the fingerprint of the files last tried (or why they could
	// not be read), whatever came of it: a poll that finds the same files
	// does not try them again.
	tried string
	// changed, if set, is called after a reload put a set in force: it
	// judges the grants given under the versions it replaced.
	changed func(ctx context.Context)
}

// compile builds a generation from files: the Rego compiled by a new
// engine, the access policies parsed and checked against the targets.
// Every error of both is returned, joined; the access policies are
// returned whenever they parsed, for the event of a rejected set.
func (l *policyLoader) compile(ctx context.Context, files *policyFiles) (*policyGeneration, *jit.Policies, error) {
	engine, authzErr := newEngine(ctx, files.authz.files)
	access, accessErr := jit.LoadPolicies(files.access.files)
	if accessErr == nil {
		accessErr = checkPolicies(access, l.targets, l.log)
	}
	var shadow *authz.Engine
	var shadowErr error
	if files.shadow.files != nil {
		if shadow, shadowErr = newEngine(ctx, files.shadow.files); shadowErr != nil {
			shadowErr = fmt.Errorf("shadow policies: %w", shadowErr)
		}
	}
	if err := errors.Join(authzErr, accessErr, shadowErr); err != nil {
		return nil, access, err
	}
	if !engine.CachesDecisions() {
		l.log.Info("the Rego policies call a nondeterministic built-in function (one that reads the clock, random numbers or the network), so every request is evaluated: decisions are not cached")
	}
	return &policyGeneration{engine: engine, access: access, shadow: shadow}, access, nil
}

// start loads the policies a jitproxy starts with. An error is returned,
// and nothing is in force: jitproxy does not start.
func (l *policyLoader) start(ctx context.Context) error {
	files, err := l.sources.read()
	if err != nil {
		return err
	}
	gen, _, err := l.compile(ctx, files)
	if err != nil {
		return err
	}
	if err := l.audit.Record(ctx, l.event(audit.TypePolicyLoaded, audit.TriggerStartup, files, gen.access, nil)); err != nil {
		return fmt.Errorf("record the policies loaded: %w", err)
	}
	l.live.cur.Store(gen)
	l.tried = files.fingerprint
	return nil
}

// reload reads the policy files again and puts the set they hold in force
// if it is valid. It returns the error that kept the set in force, which
// it has logged and, but for an audit failure, recorded.
func (l *policyLoader) reload(ctx context.Context, trigger string) error {
	files, err := l.sources.read()
	return l.apply(ctx, trigger, files, err)
}

// poll reloads the policies if their files changed since they were last
// tried.
func (l *policyLoader) poll(ctx context.Context) {
	files, err := l.sources.read()
	if fingerprint(files, err) == l.tried {
		return
	}
	l.apply(ctx, audit.TriggerFileChange, files, err)
}

// fingerprint identifies what a read found: the files, or why they could
// not be read.
func fingerprint(files *policyFiles, readErr error) string {
	if readErr != nil {
		return "unreadable: " + readErr.Error()
	}
	return files.fingerprint
}

// apply compiles files, which could not be read if readErr is set, and
// puts them in force if they are valid and the event saying so is
// recorded.
func (l *policyLoader) apply(ctx context.Context, trigger string, files *policyFiles, readErr error) error {
	if readErr != nil {
		l.tried = fingerprint(nil, readErr)
		return l.reject(ctx, trigger, nil, nil, readErr)
	}
	gen, access, err := l.compile(ctx, files)
	if err != nil {
		l.tried = files.fingerprint
		return l.reject(ctx, trigger, files, access, err)
	}
	// No audit, no change: the set is put in force only once its event is
	// recorded. A poll tries these files again.
	if err := l.audit.Record(ctx, l.event(audit.TypePolicyLoaded, trigger, files, gen.access, nil)); err != nil {
		l.log.Error("policies not reloaded: the audit cannot record the change; the set in force stays", "trigger", trigger, "err", err)
		return fmt.Errorf("record the policies loaded: %w", err)
	}
	l.tried = files.fingerprint
	l.live.cur.Store(gen)
	l.log.Info("policies reloaded", "trigger", trigger, "authz_digest", files.authzDigest, "shadow_authz_digest", files.shadowDigest, "access", accessVersions(gen.access))
	// Defensive denial: grants given under versions no longer in force
	// are judged against the new set (policies.on_change).
	if l.changed != nil {
		l.changed(ctx)
	}
	return nil
}

// reject logs and records why a set of policies was not put in force, and
// returns that error.
func (l *policyLoader) reject(ctx context.Context, trigger string, files *policyFiles, access *jit.Policies, err error) error {
	l.log.Error("policies not reloaded: the set in force stays", "trigger", trigger, "err", err)
	if aerr := l.audit.Record(ctx, l.event(audit.TypePolicyRejected, trigger, files, access, err)); aerr != nil {
		l.log.Error("record the rejected policies", "err", aerr)
	}
	return err
}

// event is the audit event of a set of policies: the files it was read
// from (nil: they could not be read), its access policies (nil: they did
// not parse) and, for a rejected set, why.
func (l *policyLoader) event(typ, trigger string, files *policyFiles, access *jit.Policies, err error) audit.Event {
	set := &audit.PolicySet{
		AuthzSource:  cmp.Or(l.sources.authzDir, "embedded"),
		AccessSource: cmp.Or(l.sources.accessDir, "embedded"),
		Trigger:      trigger,
	}
	if files != nil {
		set.AuthzDigest = files.authzDigest
	}
	if access != nil {
		set.Access = []audit.PolicyVersion{}
		for _, p := range access.All() {
			set.Access = append(set.Access, audit.PolicyVersion{Name: p.Name, Version: p.Version, Target: p.Target})
		}
	}
	e := audit.Event{Type: typ, Actor: &audit.Actor{Name: "jitproxy"}, Policies: set}
	if err != nil {
		e.Outcome = &audit.Outcome{Error: auditError(err)}
	}
	return e
}

// maxAuditErrorBytes bounds the error of a policy.rejected event.
const maxAuditErrorBytes = 2048

// auditError is err on one line for an audit event: its lines joined with
// "; ", without the tab-indented lines under them (the source line and
// caret OPA quotes under a parse error), at most maxAuditErrorBytes. The
// log has the whole error.
func auditError(err error) string {
	var lines []string
	for line := range strings.SplitSeq(err.Error(), "\n") {
		if strings.HasPrefix(line, "\t") {
			continue
		}
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	s := strings.Join(lines, "; ")
	if len(s) > maxAuditErrorBytes {
		s = strings.ToValidUTF8(s[:maxAuditErrorBytes], "") + "..."
	}
	return s
}

// accessVersions names each access policy with its version, for the log.
func accessVersions(ps *jit.Policies) []string {
	var out []string
	for _, p := range ps.All() {
		out = append(out, p.Name+"@"+p.Version)
	}
	return out
}

// run reloads the policies on each value from hup (SIGHUP), and, every
// interval when it is positive and a set is read from a directory, when
// their files change, until ctx ends. It returns nil then.
func (l *policyLoader) run(ctx context.Context, hup <-chan os.Signal, interval time.Duration) error {
	var tick <-chan time.Time
	if interval > 0 && l.sources.onDisk() {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-hup:
			l.reload(ctx, audit.TriggerSignal)
		case <-tick:
			l.poll(ctx)
		}
	}
}
