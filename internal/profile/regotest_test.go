package profile_test

import (
	"context"
	"io/fs"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/tester"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz/podsecurity"
	"github.com/jitproxy/jitproxy/internal/profile"
	"github.com/jitproxy/jitproxy/policies"
)

// TestRegoTestsPass runs the exported Rego tests against the shipped
// policies: every recorded use allowed, every neighbour denied.
func TestRegoTestsPass(t *testing.T) {
	uses := []profile.Use{
		{Kind: access.KindKubernetes, Verb: "list", Resource: "pods", Namespace: "demo"},
		{Kind: access.KindKubernetes, Verb: "get", Resource: "pods", Namespace: "demo", Name: "web"},
		{Kind: access.KindKubernetes, Verb: "get", Resource: "pods", Subresource: "log", Namespace: "demo", Name: "web"},
		{Kind: access.KindKubernetes, Verb: "patch", APIGroup: "apps", Resource: "deployments", Namespace: "demo", Name: "api"},
	}
	src := profile.Source{Grant: "g-x", Policy: "namespace-editor", Target: "demo", Namespace: "demo", User: "dev", Duration: time.Hour, Provider: "tokenrequest"}
	aws := []profile.Use{
		{Kind: access.KindAWS, Action: "s3:GetObject", Region: "eu-west-1", Resources: []string{"arn:aws:s3:::reports/a.csv"}},
		{Kind: access.KindAWS, Action: "s3:ListBucket", Region: "eu-west-1", Resources: []string{"arn:aws:s3:::reports"}},
	}
	awsSrc := profile.Source{Grant: "g-y", Policy: "reports-reader", Target: "aws", User: "dev", Duration: time.Hour, Provider: "sts"}
	modules := map[string]*ast.Module{}
	for _, c := range []struct {
		src  profile.Source
		uses []profile.Use
	}{{src, uses}, {awsSrc, aws}} {
		b, err := profile.Export("rego-test", c.src, &profile.Profile{Grant: c.src.Grant, Uses: c.uses}, profile.Options{})
		if err != nil {
			t.Fatal(err)
		}
		m, err := ast.ParseModuleWithOpts(c.src.Grant+".rego", string(b), ast.ParserOptions{RegoVersion: ast.RegoV1})
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		modules[c.src.Grant+".rego"] = m
	}
	err := fs.WalkDir(policies.Authz(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || path.Ext(p) != ".rego" || strings.HasSuffix(p, "_test.rego") {
			return err
		}
		src, err := fs.ReadFile(policies.Authz(), p)
		if err != nil {
			return err
		}
		m, err := ast.ParseModuleWithOpts(p, string(src), ast.ParserOptions{RegoVersion: ast.RegoV1})
		modules[p] = m
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	ps, err := podsecurity.New()
	if err != nil {
		t.Fatal(err)
	}
	b := ps.Builtin()
	runner := tester.NewRunner().SetModules(modules).RaiseBuiltinErrors(true).
		AddCustomBuiltins([]*tester.Builtin{{Decl: &ast.Builtin{Name: b.Name, Decl: b.Decl}, Func: b.Rego()}})
	ch, err := runner.RunTests(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for r := range ch {
		n++
		if r.Error != nil || r.Fail {
			t.Errorf("%s.%s: failed: %v", r.Package, r.Name, r.Error)
		}
	}
	if n < 10 {
		t.Errorf("only %d Rego tests ran", n)
	}
}
