package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitproxy/jitproxy/policies"
)

// writeConfig writes a configuration file whose Rego policies are the
// embedded ones copied to a directory, with extra files added, and returns
// its path.
func writeConfig(t *testing.T, extra map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	authzDir := filepath.Join(dir, "authz")
	if err := os.CopyFS(authzDir, policies.Authz()); err != nil {
		t.Fatal(err)
	}
	for name, src := range extra {
		if err := os.WriteFile(filepath.Join(authzDir, name), []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	path := filepath.Join(dir, "jitproxy.yaml")
	if err := os.WriteFile(path, []byte("policies:\n  authz_dir: authz\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestPolicyTest(t *testing.T) {
	broken := "package jitproxy.broken_test\n\ntest_broken if count(data.jitproxy.authz.permit) == 1 with input as {}\n"
	tests := []struct {
		name     string
		args     func(t *testing.T) []string
		wantErr  string // "" for success
		wantOut  []string
		wantNone []string
	}{
		{
			name:    "embedded policies pass",
			args:    func(*testing.T) []string { return []string{"policy", "test"} },
			wantOut: []string{"Rego tests of the embedded policies", "PASS  data.jitproxy.authz_test.", "kubernetes_test.rego"},
		},
		{
			name:     "filtered",
			args:     func(*testing.T) []string { return []string{"policy", "test", "--run", "aws"} },
			wantOut:  []string{"aws_test.rego"},
			wantNone: []string{"kubernetes_test.rego"},
		},
		{
			name: "broken test fails",
			args: func(t *testing.T) []string {
				return []string{"policy", "test", "--config", writeConfig(t, map[string]string{"broken_test.rego": broken})}
			},
			wantErr: "1 of ",
			wantOut: []string{"FAIL  data.jitproxy.broken_test.test_broken broken_test.rego:3"},
		},
		{
			name:    "no tests",
			args:    func(*testing.T) []string { return []string{"policy", "test", "--run", "no-such-test"} },
			wantErr: "no Rego tests found",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args(t), env(nil), &out, &out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.wantErr, out.String())
			}
			for _, s := range tt.wantOut {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.wantNone {
				if strings.Contains(out.String(), s) {
					t.Errorf("output has %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestPolicyTestExitCode checks that a failing test makes the process exit
// 1, through main.
func TestPolicyTestExitCode(t *testing.T) {
	if os.Getenv("JITPROXY_TEST_MAIN") != "" {
		os.Args = []string{"jitproxy", "policy", "test", "--config", os.Getenv("JITPROXY_TEST_MAIN")}
		main()
		os.Exit(0)
	}
	cfg := writeConfig(t, map[string]string{"broken_test.rego": "package b\n\ntest_b if false\n"})
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestPolicyTestExitCode$")
	cmd.Env = append(os.Environ(), "JITPROXY_TEST_MAIN="+cfg)
	out, err := cmd.CombinedOutput()
	code := -1
	if cmd.ProcessState != nil {
		code = cmd.ProcessState.ExitCode()
	}
	if code != 1 {
		t.Fatalf("exit code %d (%v), want 1:\n%s", code, err, out)
	}
	if !strings.Contains(string(out), "FAIL  data.b.test_b") {
		t.Errorf("output lacks the failed test:\n%s", out)
	}
}
