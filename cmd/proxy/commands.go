package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/internal/profile"
)

// clientCommand runs one admin-API command, such as "grant request".
func clientCommand(ctx context.Context, name string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cf clientFlags
	cf.register(fs, getenv)
	var cmd func(ctx context.Context, c *client, pos []string) error
	switch name {
	case "session create":
		agent := fs.String("agent", "", "name of the agent (required)")
		user := fs.String("user", "", "user the agent acts for (required)")
		groups := fs.String("groups", "", "comma-separated groups of the user")
		ttl := fs.String("ttl", "", "session lifetime, for example 8h (default: the server's)")
		kubeconfig := fs.String("kubeconfig", "", "write a kubeconfig for the session's Kubernetes targets to this file")
		awsConfig := fs.String("aws-config", "", "write an AWS config file (placeholder keys, the CA bundle, a profile per AWS target) to this file")
		caFile := fs.String("ca-file", "", "write the jitproxy CA certificate to this file (default: next to --kubeconfig, --aws-config or --env)")
		envFile := fs.String("env", "", "write the agent's environment (HTTPS_PROXY, CA bundles, KUBECONFIG) to this file")
		cmd = func(ctx context.Context, c *client, _ []string) error {
			return sessionCreate(ctx, c, cf.output, stdout, sessionFlags{*agent, *user, *groups, *ttl, *kubeconfig, *awsConfig, *caFile, *envFile}, cf.adminURL)
		}
	case "session end":
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 1 {
				return fmt.Errorf("usage: jitproxy session end SESSION-ID")
			}
			if err := c.do(ctx, "DELETE", "/v1/sessions/"+url.PathEscape(pos[0]), nil, nil); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "session %s ended; its grants are revoked\n", pos[0])
			return nil
		}
	case "grant request":
		ns := fs.String("namespace", "", "namespace the grant is for (unless the policy is cluster-wide)")
		dur := fs.String("duration", "", "how long, for example 30m (default: the policy's)")
		reason := fs.String("reason", "", "why you need it (required)")
		session := fs.String("session", "", "limit the grant to one of your agent sessions")
		dryRun := fs.Bool("dry-run", false, "only say whether the request would be accepted, what it would grant, for how long and who must approve")
		learn := fs.Bool("learn", false, "learning mode: the policy is the boundary, and every distinct action the grant allows is recorded to a profile (jitproxy profile show|export GRANT-ID)")
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 1 {
				return fmt.Errorf("usage: jitproxy grant request POLICY --namespace NS --reason TEXT [--duration D] [--dry-run]")
			}
			var g jit.Grant
			body := map[string]any{"policy": pos[0], "namespace": *ns, "duration": *dur, "reason": *reason, "session": *session, "dry_run": *dryRun, "learn": *learn}
			err := c.do(ctx, "POST", "/v1/grants", body, &g)
			if *dryRun {
				if err != nil {
					return fmt.Errorf("dry run: the request would be refused: %w", err)
				}
				return printDryRun(stdout, cf.output, &g)
			}
			if err != nil {
				return err
			}
			return printGrant(stdout, cf.output, &g)
		}
	case "grant list":
		state := fs.String("state", "", "only grants in this state (pending, active, denied, expired, revoked)")
		user := fs.String("user", "", "only grants of this user")
		cmd = func(ctx context.Context, c *client, _ []string) error {
			q := url.Values{}
			if *state != "" {
				q.Set("state", *state)
			}
			if *user != "" {
				q.Set("user", *user)
			}
			var gs []*jit.Grant
			if err := c.do(ctx, "GET", "/v1/grants?"+q.Encode(), nil, &gs); err != nil {
				return err
			}
			return printGrants(stdout, cf.output, gs)
		}
	case "grant show":
		cmd = oneGrant(stdout, &cf, "GET", "", nil)
	case "grant approve":
		cmd = oneGrant(stdout, &cf, "POST", "approve", fs.String("comment", "", "note for the audit trail"))
	case "grant deny":
		cmd = oneGrant(stdout, &cf, "POST", "deny", fs.String("reason", "", "why the request is denied"))
	case "grant revoke":
		cmd = oneGrant(stdout, &cf, "POST", "revoke", fs.String("reason", "", "why the grant is revoked"))
	case "lock create":
		user := fs.String("user", "", "lock every session of this user")
		agent := fs.String("agent", "", "lock every session of this agent")
		session := fs.String("session", "", "lock this session")
		policy := fs.String("policy", "", "take every grant under this access policy out of force")
		ttl := fs.String("ttl", "", "lift the lock after this long, for example 1h (default: when removed)")
		reason := fs.String("reason", "", "why (required; the agent is told)")
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 0 {
				return fmt.Errorf("usage: jitproxy lock create --user U | --agent A | --session S | --policy P [--ttl D] --reason TEXT")
			}
			var l jit.Lock
			body := map[string]string{"user": *user, "agent": *agent, "session": *session, "policy": *policy, "ttl": *ttl, "reason": *reason}
			if err := c.do(ctx, "POST", "/v1/locks", body, &l); err != nil {
				return err
			}
			return printLocks(stdout, cf.output, []*jit.Lock{&l})
		}
	case "lock list":
		cmd = func(ctx context.Context, c *client, _ []string) error {
			var locks []*jit.Lock
			if err := c.do(ctx, "GET", "/v1/locks", nil, &locks); err != nil {
				return err
			}
			return printLocks(stdout, cf.output, locks)
		}
	case "lock remove":
		reason := fs.String("reason", "", "why the lock is lifted")
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 1 {
				return fmt.Errorf("usage: jitproxy lock remove LOCK-ID [--reason TEXT]")
			}
			path := "/v1/locks/" + url.PathEscape(pos[0]) + "?" + url.Values{"reason": {*reason}}.Encode()
			var l jit.Lock
			if err := c.do(ctx, "DELETE", path, nil, &l); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "lock %s removed\n", esc(l.ID))
			return nil
		}
	case "profile show":
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 1 {
				return fmt.Errorf("usage: jitproxy profile show GRANT-ID")
			}
			a, err := getProfile(ctx, c, pos[0])
			if err != nil {
				return err
			}
			return printProfile(stdout, cf.output, a)
		}
	case "profile export":
		format := fs.String("format", "access-policy", "what to generate: "+strings.Join(profile.Formats, ", "))
		name := fs.String("name", "", "name of the access policy, Role or ClusterRole (default: learned-GRANT-ID)")
		maxNames := fs.Int("max-names", profile.DefaultMaxNames, "keep the object names of a resource and verb when at most this many were seen; 0: never")
		wildcards := fs.Bool("wildcards", false, "generalise: any object name, and get, list and watch together")
		sa := fs.String("service-account", "", "access-policy: mint tokens for this ServiceAccount (bind it to the exported Role) instead of the learning grant's credential")
		cmd = func(ctx context.Context, c *client, pos []string) error {
			if len(pos) != 1 {
				return fmt.Errorf("usage: jitproxy profile export GRANT-ID --format %s", strings.Join(profile.Formats, "|"))
			}
			a, err := getProfile(ctx, c, pos[0])
			if err != nil {
				return err
			}
			n := *maxNames
			if n == 0 {
				n = -1
			}
			out, err := profile.Export(*format, profileSource(a.Grant), a.Profile, profile.Options{Name: *name, MaxNames: n, Wildcards: *wildcards, ServiceAccount: *sa})
			if err != nil {
				return err
			}
			_, err = stdout.Write(out)
			return err
		}
	case "policy list":
		cmd = func(ctx context.Context, c *client, _ []string) error {
			var ps []jit.PolicyView
			if err := c.do(ctx, "GET", "/v1/policies", nil, &ps); err != nil {
				return err
			}
			return printPolicies(stdout, cf.output, ps)
		}
	default:
		return fmt.Errorf("unknown command %q; see 'jitproxy help'", name)
	}
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	c, err := cf.newClient(getenv)
	if err != nil {
		return err
	}
	return cmd(ctx, c, pos)
}

// oneGrant builds the commands that act on one grant by ID, with an
// optional comment flag.
func oneGrant(stdout io.Writer, cf *clientFlags, method, verb string, comment *string) func(context.Context, *client, []string) error {
	return func(ctx context.Context, c *client, pos []string) error {
		if len(pos) != 1 {
			return fmt.Errorf("usage: jitproxy grant %s GRANT-ID", cmp.Or(verb, "show"))
		}
		path := "/v1/grants/" + url.PathEscape(pos[0])
		var body any
		if verb != "" {
			path += "/" + verb
			body = map[string]string{"comment": *comment}
		}
		var g jit.Grant
		if err := c.do(ctx, method, path, body, &g); err != nil {
			return err
		}
		return printGrant(stdout, cf.output, &g)
	}
}

func printGrants(w io.Writer, output string, gs []*jit.Grant) error {
	if output == "json" {
		return printJSON(w, gs)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tPOLICY\tUSER\tNAMESPACE\tSTATE\tEXPIRES")
	for _, g := range gs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", esc(g.ID), esc(g.Policy), esc(g.User), dash(esc(g.Namespace)), esc(string(g.State)), when(g.ExpiresAt))
	}
	return tw.Flush()
}

// printDryRun prints the grant a request would create: what it would
// grant, for how long, and who must approve first.
func printDryRun(w io.Writer, output string, g *jit.Grant) error {
	if output == "json" {
		return printJSON(w, g)
	}
	scope := "cluster-wide"
	if g.Namespace != "" {
		scope = "namespace " + esc(g.Namespace)
	}
	fmt.Fprintf(w, "dry run: the request would be accepted (nothing was requested)\n")
	fmt.Fprintf(w, "  grant under %s (version %s) on %s, %s, for %s\n", esc(g.Policy), esc(g.PolicyVersion), esc(g.Target), scope, esc(g.User))
	switch {
	case g.State == jit.StateActive && g.ExpiresAt.Before(g.ActivatedAt.Add(g.Duration)):
		fmt.Fprintf(w, "  active at once, until %s, when its window closes (asked for %s)\n", when(g.ExpiresAt), g.Duration)
	case g.State == jit.StateActive:
		fmt.Fprintf(w, "  active at once, for %s\n", g.Duration)
	default:
		fmt.Fprintf(w, "  then waits for %s until %s; active for %s once approved\n", esc(g.Waiting()), when(g.PendingUntil), g.Duration)
	}
	if c := g.Conditions; c != nil {
		var ws []string
		for _, win := range c.Windows {
			ws = append(ws, win.String())
		}
		if len(ws) > 0 {
			fmt.Fprintf(w, "  usable only %s\n", esc(strings.Join(ws, " or ")))
		}
		if c.EndOutsideWindows {
			fmt.Fprintf(w, "  ends early when its windows close\n")
		}
		if len(c.SourceNetworks) > 0 {
			fmt.Fprintf(w, "  usable only from %s\n", esc(strings.Join(c.SourceNetworks, ", ")))
		}
		if len(c.AuthMethods) > 0 {
			fmt.Fprintf(w, "  usable only by sessions that authenticated with %s\n", esc(strings.Join(c.AuthMethods, " or ")))
		}
	}
	for _, p := range g.Permissions {
		switch {
		case p.Kubernetes != nil:
			k := p.Kubernetes
			what := strings.Join(append(slices.Clone(k.Resources), k.NonResourceURLs...), ", ")
			if len(k.APIGroups) > 0 && !slices.Equal(k.APIGroups, []string{""}) {
				what += " in API groups " + strings.Join(k.APIGroups, ", ")
			}
			if len(k.ResourceNames) > 0 {
				what += " named " + strings.Join(k.ResourceNames, ", ")
			}
			fmt.Fprintf(w, "  may %s %s\n", esc(strings.Join(k.Verbs, ", ")), esc(what))
		case p.AWS != nil:
			on := "*"
			if len(p.AWS.Resources) > 0 {
				on = strings.Join(p.AWS.Resources, ", ")
			}
			fmt.Fprintf(w, "  may %s on %s\n", esc(strings.Join(p.AWS.Actions, ", ")), esc(on))
		}
	}
	return nil
}

// printLocks prints locks; every string came from the server.
func printLocks(w io.Writer, output string, locks []*jit.Lock) error {
	if output == "json" {
		return printJSON(w, locks)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tLOCKS\tBY\tEXPIRES\tREASON")
	for _, l := range locks {
		what := "user " + esc(l.User)
		switch {
		case l.Agent != "":
			what = "agent " + esc(l.Agent)
		case l.Session != "":
			what = "session " + esc(l.Session)
		case l.Policy != "":
			what = "policy " + esc(l.Policy)
		}
		expires := "when removed"
		if !l.ExpiresAt.IsZero() {
			expires = when(l.ExpiresAt)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", esc(l.ID), what, esc(l.CreatedBy), expires, esc(l.Reason))
	}
	return tw.Flush()
}

func printPolicies(w io.Writer, output string, ps []jit.PolicyView) error {
	if output == "json" {
		return printJSON(w, ps)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTARGET\tNAMESPACES\tDEFAULT\tMAX\tAPPROVALS\tDESCRIPTION")
	for _, p := range ps {
		var escaped []string
		for _, ns := range p.Namespaces {
			escaped = append(escaped, esc(ns))
		}
		nss := strings.Join(escaped, ",")
		switch {
		case p.ClusterWide:
			nss = "(cluster-wide)"
		case nss == "":
			nss = "-" // AWS grants have no namespace
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", esc(p.Name), esc(p.Target), nss, esc(p.DefaultDuration), esc(p.MaxDuration), p.Approvals, esc(p.Description))
	}
	return tw.Flush()
}

// printGrant prints g. Every string in it came from the server, so each is
// passed through esc; -o json is escaped by encoding/json.
func printGrant(w io.Writer, output string, g *jit.Grant) error {
	if output == "json" {
		return printJSON(w, g)
	}
	scope := ", cluster-wide"
	switch {
	case g.Namespace != "":
		scope = ", namespace " + esc(g.Namespace)
	case slices.ContainsFunc(g.Permissions, func(p access.Permission) bool { return p.AWS != nil }):
		scope = "" // AWS grants have no namespace
	}
	fmt.Fprintf(w, "grant %s: %s (%s on %s%s, for %s)\n", esc(g.ID), esc(string(g.State)), esc(g.Policy), esc(g.Target), scope, esc(g.User))
	switch g.State {
	case jit.StateActive:
		fmt.Fprintf(w, "  active until %s\n", when(g.ExpiresAt))
	case jit.StatePending:
		fmt.Fprintf(w, "  waiting for %d of %d approvals until %s; an approver runs: jitproxy grant approve %s\n",
			g.RequiredApprovals-len(g.Approvals), g.RequiredApprovals, when(g.PendingUntil), esc(g.ID))
	default:
		if g.EndReason != "" {
			fmt.Fprintf(w, "  ended %s by %s: %s\n", when(g.EndedAt), esc(g.EndedBy), esc(g.EndReason))
		} else if !g.EndedAt.IsZero() {
			fmt.Fprintf(w, "  ended %s by %s\n", when(g.EndedAt), esc(g.EndedBy))
		}
	}
	if g.Learning {
		fmt.Fprintf(w, "  learning: every distinct action is recorded; see jitproxy profile show %s\n", esc(g.ID))
	}
	if g.Suspended != "" && !g.State.Ended() {
		fmt.Fprintf(w, "  suspended, in force for nothing until a policy set gives it again: %s\n", esc(g.Suspended))
	}
	fmt.Fprintf(w, "  reason: %s\n", esc(g.Reason))
	for _, a := range g.Approvals {
		fmt.Fprintf(w, "  approved by %s at %s", esc(a.By), when(a.At))
		if a.Comment != "" {
			fmt.Fprintf(w, ": %s", esc(a.Comment))
		}
		fmt.Fprintln(w)
	}

	return nil
}

// shellQuote quotes s for a POSIX shell: inside single quotes nothing is
// expanded, so a value from the server cannot run a command when the env
// file is sourced.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func when(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// esc returns s unchanged when it is valid UTF-8 and every character is
// printable, and otherwise quoted with Go's escapes (strconv.Quote), so a
// string from the server cannot start a terminal escape sequence, move the
// cursor or begin a line of its own.
func esc(s string) string {
	if utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) {
		return s
	}
	return strconv.Quote(s)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

type sessionFlags struct {
	agent, user, groups, ttl, kubeconfig, awsConfig, caFile, envFile string
}

func sessionCreate(ctx context.Context, c *client, output string, stdout io.Writer, f sessionFlags, adminURL string) error {
	var groups []string
	for g := range strings.SplitSeq(f.groups, ",") {
		if g = strings.TrimSpace(g); g != "" {
			groups = append(groups, g)
		}
	}
	var ans jit.SessionAnswer
	body := map[string]any{"agent": f.agent, "user": f.user, "groups": groups, "ttl": f.ttl}
	if err := c.do(ctx, "POST", "/v1/sessions", body, &ans); err != nil {
		return err
	}
	if f.caFile == "" {
		for _, p := range []string{f.kubeconfig, f.awsConfig, f.envFile} {
			if p != "" {
				f.caFile = filepath.Join(filepath.Dir(p), "jitproxy-ca.crt")
				break
			}
		}
	}
	abs := func(p string) string { a, _ := filepath.Abs(p); return a }
	var written []string
	if f.caFile != "" {
		if err := os.WriteFile(f.caFile, []byte(ans.CACertPEM), 0o644); err != nil {
			return err
		}
		written = append(written, f.caFile)
	}
	if f.kubeconfig != "" {
		var clusters []kube.Cluster
		for _, t := range ans.Targets {
			if t.Kind == "kubernetes" {
				clusters = append(clusters, kube.Cluster{Name: t.Name, Server: t.Server})
			}
		}
		kc, err := kube.Kubeconfig(clusters, []byte(ans.CACertPEM), ans.ProxyURL)
		if err != nil {
			return err
		}
		if err := os.WriteFile(f.kubeconfig, kc, 0o600); err != nil {
			return err
		}
		written = append(written, f.kubeconfig)
	}
	if f.awsConfig != "" {
		if err := os.WriteFile(f.awsConfig, awsConfigFile(ans, abs(f.caFile)), 0o600); err != nil {
			return err
		}
		written = append(written, f.awsConfig)
	}
	if f.envFile != "" {
		var b strings.Builder
		fmt.Fprintf(&b, "# Environment of jitproxy session %s (agent %s, user %s). Holds the session credential.\n", esc(ans.Session.ID), esc(ans.Session.Agent), esc(ans.Session.User))
		fmt.Fprintf(&b, "export HTTPS_PROXY=%s\n", shellQuote(ans.ProxyURL))
		fmt.Fprintf(&b, "export NO_PROXY=''\n")
		for _, k := range []string{"SSL_CERT_FILE", "CURL_CA_BUNDLE", "AWS_CA_BUNDLE", "REQUESTS_CA_BUNDLE"} {
			fmt.Fprintf(&b, "export %s=%s\n", k, shellQuote(abs(f.caFile)))
		}
		if f.kubeconfig != "" {
			fmt.Fprintf(&b, "export KUBECONFIG=%s\n", shellQuote(abs(f.kubeconfig)))
		}
		if f.awsConfig != "" {
			// The config file's own keys and CA bundle must win over any
			// the environment holds.
			fmt.Fprintf(&b, "export AWS_CONFIG_FILE=%s\n", shellQuote(abs(f.awsConfig)))
			fmt.Fprintf(&b, "unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_ENDPOINT_URL\n")
		}
		fmt.Fprintf(&b, "export JITPROXY_ADMIN_URL=%s\n", shellQuote(adminURL))
		if err := os.WriteFile(f.envFile, []byte(b.String()), 0o600); err != nil {
			return err
		}
		written = append(written, f.envFile)
	}
	if output == "json" {
		return printJSON(stdout, ans)
	}
	fmt.Fprintf(stdout, "session %s: agent %s for user %s until %s\n", esc(ans.Session.ID), esc(ans.Session.Agent), esc(ans.Session.User), when(ans.Session.ExpiresAt))
	for _, p := range written {
		fmt.Fprintf(stdout, "  wrote %s\n", p)
	}
	if len(written) == 0 {
		fmt.Fprintln(stdout, "  the proxy URL carries the session secret: use -o json, --env or --kubeconfig to get it")
	}
	return nil
}

// Placeholder AWS keys of every agent's AWS configuration: AWS tools need
// keys to sign with, and jitproxy replaces their signature with one made
// with the grant's credential. They reach nothing but jitproxy.
const (
	placeholderAccessKeyID     = "AKIAJITPROXYAGENTKEY"
	placeholderSecretAccessKey = "jitproxy-placeholder-secret-access-key-not-a-credential"
)

// awsConfigFile is an AWS config file for the session's AWS targets: the
// first is the default profile, and each has a profile of its name. It
// holds no secret: the keys are placeholders and the proxy URL is not in it.
func awsConfigFile(ans jit.SessionAnswer, caFile string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "# AWS configuration of jitproxy session %s. The keys are placeholders:\n", esc(ans.Session.ID))
	fmt.Fprintf(&b, "# jitproxy signs each request anew with a short-lived credential of your grant.\n")
	profile := func(header string, t jit.TargetInfo) {
		fmt.Fprintf(&b, "\n[%s]\n", header)
		fmt.Fprintf(&b, "aws_access_key_id = %s\naws_secret_access_key = %s\n", placeholderAccessKeyID, placeholderSecretAccessKey)
		fmt.Fprintf(&b, "region = %s\n", cmp.Or(t.Region, "us-east-1"))
		fmt.Fprintf(&b, "ca_bundle = %s\n", caFile)
		if t.Server != "" {
			fmt.Fprintf(&b, "endpoint_url = %s\n", t.Server)
		}
		if t.PathStyle {
			fmt.Fprintf(&b, "s3 =\n    addressing_style = path\n")
		}
	}
	first := true
	for _, t := range ans.Targets {
		if t.Kind != "aws" {
			continue
		}
		if first {
			profile("default", t)
			first = false
		}
		profile("profile "+t.Name, t)
	}
	return []byte(b.String())
}
