package authz

import (
	"context"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/types"
)

func TestRunTests(t *testing.T) {
	policy := "package jitproxy.authz\n\npermit contains \"g\" if input.action.verb == \"get\"\n"
	double := Builtin{
		Name: "test.double",
		Decl: types.NewFunction(types.Args(types.N), types.N),
		Func: func(_ rego.BuiltinContext, args []*ast.Term) (*ast.Term, error) {
			n, _ := args[0].Value.(ast.Number).Int()
			return ast.IntNumberTerm(2 * n), nil
		},
	}
	tests := []struct {
		name     string
		files    map[string]string
		builtins []Builtin
		run      string
		want     []string // package.name: PASS, FAIL or ERROR
	}{
		{
			name: "pass and fail",
			files: map[string]string{
				"authz.rego": policy,
				"authz_test.rego": "package jitproxy.authz_test\n\n" +
					"test_get if \"g\" in data.jitproxy.authz.permit with input as {\"action\": {\"verb\": \"get\"}}\n\n" +
					"test_list if \"g\" in data.jitproxy.authz.permit with input as {\"action\": {\"verb\": \"list\"}}\n",
			},
			want: []string{"data.jitproxy.authz_test.test_get: PASS", "data.jitproxy.authz_test.test_list: FAIL"},
		},
		{
			name: "filtered",
			files: map[string]string{
				"authz.rego":      policy,
				"authz_test.rego": "package jitproxy.authz_test\n\ntest_a if true\n\ntest_b if false\n",
			},
			run:  "test_a",
			want: []string{"data.jitproxy.authz_test.test_a: PASS"},
		},
		{
			name: "builtin",
			files: map[string]string{
				"authz_test.rego": "package jitproxy.authz_test\n\ntest_double if test.double(2) == 4\n",
			},
			builtins: []Builtin{double},
			want:     []string{"data.jitproxy.authz_test.test_double: PASS"},
		},
		{
			name: "hidden directories are skipped",
			files: map[string]string{
				"a_test.rego":        "package a\n\ntest_a if true\n",
				"..2026/a_test.rego": "package a\n\ntest_a if true\n",
			},
			want: []string{"data.a.test_a: PASS"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fsys := fstest.MapFS{}
			for name, src := range tt.files {
				fsys[name] = &fstest.MapFile{Data: []byte(src)}
			}
			rs, err := RunTests(context.Background(), TestConfig{Policies: fsys, Builtins: tt.builtins, Run: tt.run})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, r := range rs {
				verdict := "PASS"
				switch {
				case r.Error != nil:
					verdict = "ERROR"
				case r.Fail:
					verdict = "FAIL"
				}
				got = append(got, r.Package+"."+r.Name+": "+verdict)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("results (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRunTestsErrors(t *testing.T) {
	tests := []struct {
		name string
		cfg  TestConfig
	}{
		{"no policies", TestConfig{}},
		{"parse error", TestConfig{Policies: fstest.MapFS{"a.rego": {Data: []byte("package a\n\nx if {")}}}},
		{"unknown builtin", TestConfig{Policies: fstest.MapFS{"a_test.rego": {Data: []byte("package a\n\ntest_a if nope.f(1)\n")}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := RunTests(context.Background(), tt.cfg); err == nil {
				t.Error("RunTests succeeded, want an error")
			}
		})
	}
}
