package authz_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/authz"
)

// upper is a builtin that upper-cases a string, and fails on "fail".
var upper = authz.Builtin{
	Name: "test.upper",
	Decl: types.NewFunction(types.Args(types.S), types.S),
	Func: func(_ rego.BuiltinContext, args []*ast.Term) (*ast.Term, error) {
		s, ok := args[0].Value.(ast.String)
		if !ok || s == "fail" {
			return nil, errors.New("cannot upper-case that")
		}
		return ast.StringTerm(strings.ToUpper(string(s))), nil
	},
}

var upperPolicy = fstest.MapFS{"a.rego": {Data: []byte(`package jitproxy.authz
permit contains "g-1" if true
forbid contains test.upper(input.action.kubernetes.verb)
`)}}

func TestBuiltins(t *testing.T) {
	e, err := authz.New(context.Background(), authz.Config{Policies: upperPolicy, Builtins: []authz.Builtin{upper}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		verb    string
		want    authz.Decision
		wantErr string
	}{
		{name: "called", verb: "get", want: authz.Decision{GrantIDs: []string{"g-1"}, Reasons: []string{"GET"}}},
		{name: "an error fails the evaluation", verb: "fail", wantErr: "test.upper: cannot upper-case that"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := e.Decide(context.Background(), authz.Input{Action: access.Action{Kubernetes: &access.KubernetesAction{Verb: tt.verb}}})
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Decide() (-want +got):\n%s", diff)
			}
			if gotErr := errString(err); !strings.Contains(gotErr, tt.wantErr) || (tt.wantErr == "") != (err == nil) {
				t.Errorf("Decide() error = %q, want one containing %q", gotErr, tt.wantErr)
			}
		})
	}
}

func TestNewRejectsBadBuiltins(t *testing.T) {
	noName, noDecl, noFunc := upper, upper, upper
	noName.Name, noDecl.Decl, noFunc.Func = "", nil, nil
	tests := []struct {
		name     string
		builtins []authz.Builtin
		wantErrs []string
	}{
		{name: "not given", wantErrs: []string{"compile policies", "test.upper"}},
		{name: "no name", builtins: []authz.Builtin{noName}, wantErrs: []string{"Config.Builtins[0]: Name is required"}},
		{
			name:     "no declaration or function",
			builtins: []authz.Builtin{noDecl, noFunc},
			wantErrs: []string{"Config.Builtins[0] (test.upper): Decl is required", "Config.Builtins[1] (test.upper): Func is required"},
		},
		{name: "twice", builtins: []authz.Builtin{upper, upper}, wantErrs: []string{"Config.Builtins[1]: test.upper is given twice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := authz.New(context.Background(), authz.Config{Policies: upperPolicy, Builtins: tt.builtins})
			for _, want := range tt.wantErrs {
				if !strings.Contains(errString(err), want) {
					t.Errorf("New() error = %v, want one containing %q", err, want)
				}
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
