package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/intercept/aws"
	"github.com/jitproxy/jitproxy/internal/intercept/kube"
	"github.com/jitproxy/jitproxy/internal/jit"
	"github.com/jitproxy/jitproxy/policies"
)

const policyEvalUsage = `usage: jitproxy policy eval [--config FILE] [--target T] --user U [--groups G,...] [--grant POLICY[:NAMESPACE]]... [--explain[=full|notes|fails]]
  (KUBECTL-LIKE REQUEST | --aws 'ACTION [ARN...] [REGION]' | --request-id ID --audit-file FILE)

A Kubernetes request is VERB RESOURCE[.GROUP] [NAME] [-n NAMESPACE] [--subresource S],
as in 'get pods -n demo' or 'delete deployments.apps web -n demo', or METHOD PATH,
as in 'GET /api/v1/namespaces/demo/pods'.`

// stringList is a flag that may be given several times.
type stringList []string

func (l *stringList) String() string     { return strings.Join(*l, ",") }
func (l *stringList) Set(s string) error { *l = append(*l, s); return nil }

// policyEval decides one request with the configured policies, as the
// proxy would, and prints the decision, the rules that fired and the hint.
func policyEval(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy eval", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprintln(stderr, policyEvalUsage); fs.PrintDefaults() }
	configPath := fs.String("config", getenv("JITPROXY_CONFIG"), "configuration file (env JITPROXY_CONFIG)")
	target := fs.String("target", "", "target name (default: the recorded request's, or the only configured target of the kind, or the first grant's)")
	user := fs.String("user", "", "user the caller acts for")
	agent := fs.String("agent", "", "agent name")
	groups := fs.String("groups", "", "comma-separated groups of the user")
	var grants stringList
	fs.Var(&grants, "grant", "a grant in force under access policy POLICY, in NAMESPACE if given (repeatable)")
	awsAction := fs.String("aws", "", "an AWS request: 'ACTION [ARN...] [REGION]', as in 's3:GetObject arn:aws:s3:::reports/q3.csv us-east-1'")
	apiVersion := fs.String("api-version", "v1", "API version of a kubectl-like request's resource")
	requestID := fs.String("request-id", "", "decide again the request of this ID, recorded in --audit-file")
	auditFile := fs.String("audit-file", "", "a native audit file (the file sink's JSON lines)")
	var explain explainFlag
	fs.Var(&explain, "explain", "print the policy input too; =full, =notes or =fails also OPA's explanation of the evaluation, as opa eval --explain")
	var namespace string
	fs.StringVar(&namespace, "n", "", "namespace of a kubectl-like request (or -n inside it)")
	fs.StringVar(&namespace, "namespace", "", "namespace of a kubectl-like request (or -n inside it)")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	forms := 0
	for _, set := range []bool{len(pos) > 0, *awsAction != "", *requestID != ""} {
		if set {
			forms++
		}
	}
	if forms != 1 || (*requestID != "") != (*auditFile != "") {
		return errors.New(policyEvalUsage)
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	engine, err := newEngine(ctx, dirOr(cfg.Policies.AuthzDir, policies.Authz()))
	if err != nil {
		return err
	}
	accessPolicies, err := jit.LoadPolicies(dirOr(cfg.Policies.AccessDir, policies.Access()))
	if err != nil {
		return err
	}

	q := intercept.Question{Policies: intercept.PolicySet{Decider: engine, Access: accessPolicies}}
	q.Caller = access.Caller{User: *user, Agent: *agent}
	if *groups != "" {
		q.Caller.Groups = strings.Split(*groups, ",")
	}
	kind := access.KindKubernetes
	var recorded *audit.Event
	switch {
	case *requestID != "":
		if recorded, err = findRequest(*auditFile, *requestID); err != nil {
			return err
		}
		q.Action, q.Caller = *recorded.Action, *recorded.Caller
		kind, *target = recorded.Action.Kind, cmp.Or(*target, recorded.Action.Target)
	case *awsAction != "":
		kind = access.KindAWS
		if q.Action, err = parseAWSAction(*awsAction); err != nil {
			return err
		}
	default:
		if namespace != "" {
			pos = append(pos, "-n", namespace)
		}
		r, err := kubeRequest(strings.Join(pos, " "), *apiVersion)
		if err != nil {
			return err
		}
		if q.Action, err = kube.New().Classify(r, nil); err != nil {
			return fmt.Errorf("classify %q: %w", strings.Join(pos, " "), err)
		}
	}
	switch kind {
	case access.KindKubernetes:
		q.Protocol = kube.New()
	case access.KindAWS:
		q.Protocol = aws.New(aws.Config{})
	default:
		return fmt.Errorf("target kind %q cannot be evaluated", kind)
	}
	for i, g := range grants {
		name, ns, _ := strings.Cut(g, ":")
		p := accessPolicies.Get(name)
		if p == nil {
			return fmt.Errorf("--grant %s: no access policy %q", g, name)
		}
		q.Grants = append(q.Grants, &jit.Grant{
			ID: fmt.Sprintf("g%d-%s", i+1, name), Policy: p.Name, PolicyVersion: p.Version, Target: p.Target,
			Namespace: ns, Permissions: p.Permissions, User: q.Caller.User, State: jit.StateActive,
		})
	}
	if q.Target = *target; q.Target == "" {
		if q.Target = onlyTarget(cfg, kind); q.Target == "" && len(q.Grants) > 0 {
			q.Target = q.Grants[0].Target
		}
		if q.Target == "" {
			return errors.New("--target is required: no configured target or grant tells it")
		}
	}
	e, err := intercept.Explain(ctx, q)
	if err != nil {
		return err
	}
	printExplanation(stdout, e, recorded, explain != "")
	if explain != "" && explain != "input" {
		fmt.Fprintf(stdout, "explanation (%s):\n", explain)
		if _, err := engine.Explain(ctx, e.Input, string(explain), stdout); err != nil {
			return err
		}
	}
	return nil
}

// explainFlag is --explain alone ("input") or --explain=LEVEL.
type explainFlag string

func (f *explainFlag) String() string   { return string(*f) }
func (f *explainFlag) IsBoolFlag() bool { return true }
func (f *explainFlag) Set(s string) error {
	switch s {
	case "true":
		*f = "input"
	case "false":
		*f = ""
	case authz.ExplainFull, authz.ExplainNotes, authz.ExplainFails:
		*f = explainFlag(s)
	default:
		return fmt.Errorf("want --explain, or --explain=%s, %s or %s", authz.ExplainFull, authz.ExplainNotes, authz.ExplainFails)
	}
	return nil
}

// onlyTarget is the name of the one configured target of kind; "" when
// there is none or more than one.
func onlyTarget(cfg Config, kind string) string {
	name := ""
	for _, t := range cfg.Targets {
		if t.Kind == kind {
			if name != "" {
				return ""
			}
			name = t.Name
		}
	}
	return name
}

// printExplanation prints the decision, the rules that fired (the
// permitting grants, the forbid reasons), the hint and, when recorded is
// set, the decision recorded for the request then.
func printExplanation(w io.Writer, e intercept.Explanation, recorded *audit.Event, input bool) {
	d := e.Decision
	verdict := "DENY"
	if d.Allowed {
		verdict = "ALLOW"
	}
	fmt.Fprintf(w, "%s %s (target %s, user %s)\n", verdict, e.Description, e.Input.Action.Target, e.Input.Caller.User)
	switch {
	case len(d.GrantIDs) > 0:
		fmt.Fprintf(w, "permit: %s\n", strings.Join(d.GrantIDs, ", "))
	case d.Discovery:
		fmt.Fprintln(w, "permit_discovery: true")
	default:
		fmt.Fprintln(w, "permit: none")
	}
	if forbidden := !d.Allowed && !slices.Equal(d.Reasons, []string{authz.ReasonNoGrant}); forbidden {
		for _, r := range d.Reasons {
			fmt.Fprintf(w, "forbid: %s\n", r)
		}
	}
	if d.Allowed {
		fmt.Fprintf(w, "reasons: %s\n", strings.Join(d.Reasons, "; "))
	}
	if e.Message != "" {
		fmt.Fprintf(w, "denial: %s\n", e.Message)
	}
	if recorded != nil && recorded.Decision != nil {
		fmt.Fprintf(w, "recorded: allowed=%t reasons=%q\n", recorded.Decision.Allowed, recorded.Decision.Reasons)
	}
	if input {
		b, _ := json.MarshalIndent(map[string]any{"caller": e.Input.Caller, "action": e.Input.Action, "grants": e.Input.Grants.Grants()}, "", "  ")
		fmt.Fprintf(w, "input: %s\n", b)
	}
}

// kubeRequest makes the HTTP request a kubectl-like description stands
// for, for the Kubernetes protocol to classify: METHOD PATH, or VERB
// RESOURCE[.GROUP] [NAME] [-n NAMESPACE] [--subresource S].
func kubeRequest(desc, version string) (*http.Request, error) {
	f := strings.Fields(desc)
	if len(f) == 2 && f[0] == strings.ToUpper(f[0]) && strings.HasPrefix(f[1], "/") {
		return http.NewRequest(f[0], "https://kubernetes"+f[1], nil)
	}
	var verb, resource, name, ns, sub string
	var rest []string
	for i := 0; i < len(f); i++ {
		switch a := f[i]; {
		case (a == "-n" || a == "--namespace" || a == "--subresource") && i+1 < len(f):
			if a == "--subresource" {
				sub = f[i+1]
			} else {
				ns = f[i+1]
			}
			i++
		case strings.HasPrefix(a, "--namespace="), strings.HasPrefix(a, "-n="):
			_, ns, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "--subresource="):
			_, sub, _ = strings.Cut(a, "=")
		case strings.HasPrefix(a, "-"):
			return nil, fmt.Errorf("unknown option %q in %q", a, desc)
		default:
			rest = append(rest, a)
		}
	}
	switch len(rest) {
	case 3:
		name = rest[2]
		fallthrough
	case 2:
		verb, resource = rest[0], rest[1]
	default:
		return nil, fmt.Errorf("%q: want VERB RESOURCE [NAME] [-n NAMESPACE], or METHOD PATH", desc)
	}
	if r, n, ok := strings.Cut(resource, "/"); ok {
		resource, name = r, cmp.Or(name, n)
	}
	resource, group, _ := strings.Cut(resource, ".")
	var method, query string
	switch verb {
	case "get":
		method = http.MethodGet
	case "list":
		method, name = http.MethodGet, ""
	case "watch":
		method, query = http.MethodGet, "?watch=true"
	case "create":
		method = http.MethodPost
	case "update":
		method = http.MethodPut
	case "patch":
		method = http.MethodPatch
	case "delete", "deletecollection":
		method = http.MethodDelete
	default:
		return nil, fmt.Errorf("%q: unknown verb %q (want get, list, watch, create, update, patch, delete or deletecollection)", desc, verb)
	}
	if (verb == "update" || verb == "patch" || verb == "delete") && name == "" {
		return nil, fmt.Errorf("%q: %s needs a NAME", desc, verb)
	}
	p := "/api/" + version
	if group != "" {
		p = "/apis/" + group + "/" + version
	}
	if ns != "" {
		p += "/namespaces/" + url.PathEscape(ns)
	}
	p += "/" + resource
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	if sub != "" {
		p += "/" + sub
	}
	return http.NewRequest(method, "https://kubernetes"+p+query, nil)
}

// parseAWSAction reads 'ACTION [ARN...] [REGION]'.
func parseAWSAction(s string) (access.Action, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return access.Action{}, errors.New("--aws: want 'ACTION [ARN...] [REGION]'")
	}
	service, op, ok := strings.Cut(f[0], ":")
	if !ok || service == "" || op == "" {
		return access.Action{}, fmt.Errorf("--aws: %q is not an IAM action such as s3:GetObject", f[0])
	}
	a := &access.AWSAction{Service: service, Action: f[0]}
	for _, arg := range f[1:] {
		switch {
		case strings.HasPrefix(arg, "arn:"):
			a.Resources = append(a.Resources, arg)
			if parts := strings.SplitN(arg, ":", 6); len(parts) == 6 && a.Account == "" {
				a.Account = parts[4]
			}
		case a.Region == "":
			a.Region = arg
		default:
			return access.Action{}, fmt.Errorf("--aws: %q is neither an ARN nor the region (already %s)", arg, a.Region)
		}
	}
	return access.Action{AWS: a}, nil
}

// findRequest reads the request event of id from a native audit file:
// the last one with an action and a caller (the final "request" event,
// or the "request.decided" one before it).
func findRequest(path, id string) (*audit.Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var found *audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		if !strings.Contains(sc.Text(), id) {
			continue
		}
		var e audit.Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("%s:%d: %w", path, line, err)
		}
		if e.RequestID == id && e.Action != nil && e.Caller != nil {
			found = &e
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if found == nil {
		return nil, fmt.Errorf("no request %s with an action in %s", id, path)
	}
	return found, nil
}
