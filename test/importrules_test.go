package test

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/jitproxy/jitproxy"

// importRules is the dependency direction of shared/DESIGN.md: for each
// package (and its children), the project packages it may depend on,
// directly or not. Siblings never import each other, and a parent never
// imports its children (backends import their parent). access and secret
// are leaves of value types every package may use.
var importRules = []struct {
	pkg   string
	allow []string
}{
	{pkg: "internal/secret", allow: nil},
	{pkg: "internal/access", allow: nil},
	{pkg: "internal/strictjson", allow: nil},
	{pkg: "internal/redistest", allow: nil}, // a test helper: tests import it
	{pkg: "policies", allow: nil},
	// The HTTP audit sinks (internal/audit/sink/...) keep their bearer
	// token in a secret.Value: secret, like access, is a leaf.
	{pkg: "internal/audit", allow: []string{"internal/access", "internal/secret"}},
	{pkg: "internal/authz", allow: []string{"internal/access"}},
	{pkg: "internal/jit", allow: []string{"internal/audit", "internal/access", "internal/secret"}},
	// internal/jit/rbacconv writes access policies and parses them back
	// with jit: the parent's rule covers it, as a child of jit.
	{pkg: "internal/approvalpage", allow: []string{"internal/jit", "internal/audit", "internal/access", "internal/secret"}},
	// profile records and exports learning grants' profiles: intercept
	// and jit declare the interfaces it meets; cmd/proxy wires it.
	{pkg: "internal/profile", allow: []string{"internal/access"}},
	{pkg: "internal/broker", allow: []string{"internal/audit", "internal/access", "internal/secret"}},
	// metrics reads the audit recorder's Stats; the packages that record
	// declare their own interfaces and never import it.
	{pkg: "internal/metrics", allow: []string{"internal/audit", "internal/access", "internal/secret"}},
	{pkg: "internal/intercept", allow: []string{"internal/authz", "internal/jit", "internal/broker", "internal/audit", "internal/access", "internal/secret", "internal/strictjson"}},
	{pkg: "cmd/proxy", allow: []string{"*"}},
}

func TestImportRules(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", `{{.ImportPath}}{{range .Deps}} {{.}}{{end}}`, "./...")
	cmd.Dir = ".."
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.String())
	}
	checked := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<22)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		pkg, ok := strings.CutPrefix(fields[0], module+"/")
		if !ok || strings.HasPrefix(pkg, "test") {
			continue
		}
		rule := -1
		for i, r := range importRules {
			if pkg == r.pkg || strings.HasPrefix(pkg, r.pkg+"/") {
				rule = i
			}
		}
		if rule < 0 {
			t.Errorf("package %s has no import rule: add it to importRules", pkg)
			continue
		}
		r := importRules[rule]
		checked++
		for _, dep := range fields[1:] {
			d, ok := strings.CutPrefix(dep, module+"/")
			if !ok || slices.Contains(r.allow, "*") {
				continue
			}
			// A backend may import its parent, and the parent's own allowances.
			if strings.HasPrefix(pkg, d+"/") && (d == r.pkg || strings.HasPrefix(d, r.pkg+"/")) {
				continue
			}
			if !slices.ContainsFunc(r.allow, func(a string) bool { return d == a }) {
				t.Errorf("%s depends on %s, which the design does not allow", pkg, d)
			}
		}
	}
	if checked < len(importRules) {
		t.Errorf("checked %d packages, want at least %d", checked, len(importRules))
	}
}

// TestNoTextTemplate: the jitproxy binary must not link text/template
// (html/template uses it). A binary that does keeps every exported method
// of every type, since templates call methods by name: with the approval
// page on html/template, jitproxy was 38 MB larger (111 MB against 73)
// and its resident memory under make bench-e2e 22 MB more. The page
// writes its HTML with its own escaping writer instead.
func TestNoTextTemplate(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "./cmd/proxy")
	cmd.Dir = ".."
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		// gRPC links html/template too (golang.org/x/net/trace): it came
		// with OpenTelemetry's OTLP exporter, 45 MB more; jitproxy has its
		// own OTLP/HTTP exporter.
		if pkg == "text/template" || pkg == "html/template" || pkg == "google.golang.org/grpc" {
			t.Errorf("cmd/proxy depends on %s", pkg)
		}
	}
}
