package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/policies"
)

// isPolicyTool reports whether "policy sub" is one of the commands that
// work on the configured policy files rather than through the admin API.
func isPolicyTool(sub string) bool { return sub == "test" || sub == "eval" }

// policyTool runs "policy test" or "policy eval".
func policyTool(ctx context.Context, sub string, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	switch sub {
	case "test":
		return policyTest(ctx, args, getenv, stdout, stderr)
	case "eval":
		return policyEval(ctx, args, getenv, stdout, stderr)
	}
	return fmt.Errorf("unknown command \"policy %s\"", sub)
}

// policyTest runs the Rego tests of the configured authorization policies
// (the config's policies.authz_dir, or the embedded ones) with the
// builtins jitproxy gives the engine, prints each test's result as `opa
// test -v` does, and fails when a test fails or errs.
func policyTest(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("policy test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", getenv("JITPROXY_CONFIG"), "configuration file (env JITPROXY_CONFIG)")
	run := fs.String("run", "", "only the tests whose names (data.PACKAGE.test_NAME) match this regular expression")
	shadow := fs.Bool("shadow", false, "test the shadow policies (policies.shadow_authz_dir) instead of the enforced ones")
	pos, err := parseInterspersed(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return errors.New("usage: jitproxy policy test [--config FILE] [--run REGEX] [--shadow]")
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	dir := cfg.Policies.AuthzDir
	if *shadow {
		if dir = cfg.Policies.ShadowAuthzDir; dir == "" {
			return errors.New("--shadow: the configuration sets no policies.shadow_authz_dir")
		}
	}
	bs, err := policyBuiltins()
	if err != nil {
		return err
	}
	rs, err := authz.RunTests(ctx, authz.TestConfig{Policies: dirOr(dir, policies.Authz()), Builtins: bs, Run: *run})
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "Rego tests of %s\n", cmp.Or(dir, "the embedded policies"))
	failed := printTestResults(stdout, rs)
	switch {
	case len(rs) == 0:
		return errors.New("no Rego tests found")
	case failed > 0:
		return fmt.Errorf("%d of %d Rego tests failed", failed, len(rs))
	}
	return nil
}

// printTestResults prints one line per test, as `opa test -v` does but
// with the test's place on the same line, then what failed and a summary;
// it returns the number of tests that failed or erred.
func printTestResults(w io.Writer, rs []*tester.Result) int {
	var pass, fail, errs, skip int
	for _, r := range rs {
		verdict := "PASS"
		switch {
		case r.Skip:
			verdict = "SKIP"
			skip++
		case r.Error != nil:
			verdict = "ERROR"
			errs++
		case r.Fail:
			verdict = "FAIL"
			fail++
		default:
			pass++
		}
		where := ""
		if r.Location != nil {
			where = fmt.Sprintf(" %s:%d", r.Location.File, r.Location.Row)
		}
		fmt.Fprintf(w, "%-5s %s.%s%s (%s)\n", verdict, r.Package, r.Name, where, r.Duration.Round(time.Microsecond))
		if r.Error != nil {
			fmt.Fprintf(w, "      %v\n", r.Error)
		}
		if len(r.Output) > 0 {
			fmt.Fprintf(w, "      %s\n", strings.ReplaceAll(strings.TrimSpace(string(r.Output)), "\n", "\n      "))
		}
	}
	fmt.Fprintf(w, "%d passed, %d failed, %d errors, %d skipped\n", pass, fail, errs, skip)
	return fail + errs
}
