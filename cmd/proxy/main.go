// Command jitproxy is a credential-brokering proxy for AI agents: agents
// reach Kubernetes and AWS through it, every request is authorized
// by policy against just-in-time grants, and the credential the request
// carries upstream is minted for its grant and never seen by the agent.
//
// Usage:
//
//	jitproxy serve [flags]            run the proxy and the admin API
//	jitproxy session create|end       agent sessions (runners)
//	jitproxy grant request|list|show|approve|deny|revoke
//	jitproxy policy list              access policies you may request
//	jitproxy policy convert-rbac      access policies from a cluster's RBAC
//	jitproxy profile show|export      what a learning grant used
//	jitproxy policy test|eval         test the Rego policies; explain a decision
//	jitproxy audit verify FILE...     check an audit stream's hash chain
//	jitproxy version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if !errors.Is(err, flag.ErrHelp) {
			fmt.Fprintln(os.Stderr, "jitproxy:", err)
		}
		os.Exit(1)
	}
}

const usage = `usage: jitproxy <command> [arguments]

commands:
  serve               run the forward proxy and the admin API
  session create      create an agent session (runners)
  session end ID      end an agent session and revoke its grants
  grant request P     request a grant under access policy P
  grant list          list grants you may see
  grant show ID       show one grant
  grant approve ID    approve a pending grant
  grant deny ID       deny a pending grant
  grant revoke ID     end a pending or active grant
  policy list         list the access policies you may request
  policy convert-rbac write access policies equivalent to RBAC bindings: --target T (--kubeconfig F | -f FILE...)
  profile show ID     list what learning grant ID used, with counts and first/last use
  profile export ID   generate from learning grant ID's profile: --format access-policy|role|iam|rego-test
  policy test         run the Rego tests of the configured policies, with jitproxy's builtins
  policy eval REQ     decide a request as the proxy would: decision, rules that fired, hint
  lock create         lock a user, agent, session or access policy (admins): --user U | --agent A | --session S | --policy P
  lock list           list the locks in force (admins)
  lock remove ID      lift a lock (admins)
  audit verify FILE   check the sequence and hash chain of an audit sink's records
  version             print the version

Run 'jitproxy <command> -h' for a command's flags.
`

// run is main without the process: tests call it directly.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return serve(ctx, rest, getenv, stdout, stderr)
	case "session", "grant", "policy", "lock", "profile":
		if len(rest) == 0 {
			return fmt.Errorf("%s: a subcommand is required; see 'jitproxy help'", cmd)
		}
		if cmd == "policy" && rest[0] == "convert-rbac" {
			return convertRBAC(ctx, rest[1:], stdout, stderr)
		}
		if cmd == "policy" && isPolicyTool(rest[0]) {
			return policyTool(ctx, rest[0], rest[1:], getenv, stdout, stderr)
		}
		return clientCommand(ctx, cmd+" "+rest[0], rest[1:], getenv, stdout, stderr)
	case "audit":
		return auditCommand(args[1:], stdout)
	case "version":
		fmt.Fprintln(stdout, "jitproxy", version)
		return nil
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stderr, usage)
	return fmt.Errorf("unknown command %q", cmd)
}

// parseInterspersed parses flags that may come before, between or after
// positional arguments, and returns the positional ones.
func parseInterspersed(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}
