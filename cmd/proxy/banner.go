package main

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// printBanner tells the operator where everything is and how to point an
// agent at it. It prints no secret: tokens stay in their files.
func printBanner(w io.Writer, c *components) {
	cfg := c.cfg
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format+"\n", args...) }
	p("")
	p("jitproxy %s is running", version)
	p("  forward proxy   %s", cfg.proxyURL())
	p("  admin API       http://%s", cfg.Admin.Listen)
	ca := filepath.Join(cfg.StateDir, "ca.crt")
	if c.caCreated {
		p("  CA certificate  %s (generated now; agents must trust it)", ca)
	} else {
		p("  CA certificate  %s", ca)
	}
	p("  state store     %s", cfg.Redis.describe())
	var sinks []string
	if cfg.auditStdout() {
		sinks = append(sinks, "stdout")
	}
	if cfg.Audit.File != "" {
		sinks = append(sinks, cfg.Audit.File)
	}
	p("  audit events    %s", strings.Join(sinks, ", "))
	if len(c.targets.targets) == 0 {
		p("  targets         none: add a kubernetes target under targets: in the config file")
	}
	for _, t := range c.targets.targets {
		p("  target          %s: %s -> %s", t.Name, strings.Join(t.Hosts, ", "), t.Upstream)
	}
	if c.identitiesGenerated != "" {
		p("  identities      %s (generated for local use: runner, dev, approver, admin)", c.identitiesGenerated)
	}
	var policies []string
	for _, pol := range c.live.AccessPolicies().All() {
		policies = append(policies, pol.Name)
	}
	p("  access policies %s", strings.Join(policies, ", "))
	p("")
	p("Point an agent at it (a runner creates its session):")
	p("  jitproxy session create --as runner --agent my-agent --user dev --groups developers \\")
	p("      --kubeconfig agent.kubeconfig --env agent.env")
	p("  . ./agent.env; kubectl get pods -n demo      # denied until a grant is active")
	p("Then request, approve and revoke grants:")
	p("  jitproxy grant request pod-reader --as dev --namespace demo --reason \"look at the failing pod\"")
	p("  jitproxy grant request namespace-editor --as dev --namespace demo --reason \"roll back web\"")
	p("  jitproxy grant approve ID --as approver")
	p("  jitproxy grant revoke ID --as dev")
	p("")
	io.WriteString(w, b.String())
}
