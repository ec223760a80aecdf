package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/authz"
	"github.com/jitproxy/jitproxy/internal/jit"
)

// TestShadowPoliciesReload: the shadow set is compiled and reloaded with
// the others, a broken one keeps the whole set in force, and without a
// shadow directory there is no shadow Decider.
func TestShadowPoliciesReload(t *testing.T) {
	e := newReloadEnv(t)
	if s := e.live.Policies().Shadow; s != nil {
		t.Fatalf("Shadow = %v without a shadow directory, want nil", s)
	}
	shadowDir := filepath.Join(filepath.Dir(e.authzDir), "shadow")
	e.write("shadow/authz.rego", regoPermit)
	e.loader.sources.shadowAuthzDir = shadowDir
	// verdicts are the delete decisions of the enforced and shadow sets.
	verdicts := func() [2]bool {
		t.Helper()
		set := e.live.Policies()
		if set.Shadow == nil {
			t.Fatal("no shadow Decider")
		}
		p := set.Access.(*jit.Policies).Get("pod-reader")
		in := authz.Input{
			Caller: access.Caller{Session: "s-1", User: "dev"},
			Action: access.Action{Kind: access.KindKubernetes, Target: "demo", Method: "DELETE",
				Kubernetes: &access.KubernetesAction{Verb: "delete", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
			Grants: authz.NewGrantSet(authz.Grant{ID: "g-1", Policy: p.Name, Target: "demo", Namespace: "demo", Permissions: p.Permissions}),
		}
		var out [2]bool
		enforced, err := set.Decider.Decide(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		shadow, err := set.Shadow.Decide(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		out[0], out[1] = enforced.Allowed, shadow.Allowed
		return out
	}
	steps := []struct {
		name    string
		shadow  string
		wantErr bool
		want    [2]bool // enforced, shadow
	}{
		{name: "shadow like enforced", shadow: regoPermit, want: [2]bool{true, true}},
		{name: "shadow forbids deletes", shadow: regoPermit + "\n" + regoForbidDelete[len("package jitproxy.authz\n"):], want: [2]bool{true, false}},
		{name: "broken shadow keeps the set", shadow: regoBroken, wantErr: true, want: [2]bool{true, false}},
	}
	for _, st := range steps {
		e.write("shadow/authz.rego", st.shadow)
		err := e.loader.reload(t.Context(), audit.TriggerSignal)
		if (err != nil) != st.wantErr {
			t.Fatalf("%s: reload = %v, want error %t", st.name, err, st.wantErr)
		}
		if diff := cmp.Diff(st.want, verdicts()); diff != "" {
			t.Errorf("%s: delete allowed by enforced, shadow (-want +got):\n%s", st.name, diff)
		}
	}
}

// TestShadowPoliciesChecked: serve --check-config compiles the shadow set
// (a relative directory is relative to the file), and policy test
// --shadow runs its tests.
func TestShadowPoliciesChecked(t *testing.T) {
	dir := t.TempDir()
	shadow := filepath.Join(dir, "shadow")
	if err := os.Mkdir(shadow, 0o700); err != nil {
		t.Fatal(err)
	}
	cfg := writeFile(t, dir, "c.yaml", "state_dir: st\npolicies: {shadow_authz_dir: shadow}\n")
	tests := []struct {
		name    string
		files   map[string]string
		args    []string
		wantErr string
		wantOut string
	}{
		{name: "broken shadow set", files: map[string]string{"authz.rego": regoBroken}, args: []string{"serve", "--check-config"}, wantErr: "shadow policies"},
		{name: "valid shadow set", files: map[string]string{"authz.rego": regoPermit}, args: []string{"serve", "--check-config"}, wantOut: "configuration is valid"},
		{
			name:    "shadow tests",
			files:   map[string]string{"authz.rego": regoPermit, "authz_test.rego": "package jitproxy.authz_test\n\ntest_nothing_without_grants if count(data.jitproxy.authz.permit) == 0 with input as {\"grants\": []}\n"},
			args:    []string{"policy", "test", "--shadow"},
			wantOut: "PASS  data.jitproxy.authz_test.test_nothing_without_grants",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for name, src := range tt.files {
				writeFile(t, shadow, name, src)
			}
			var out bytes.Buffer
			err := run(context.Background(), append(tt.args, "--config", cfg), env(nil), &out, &out)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Fatalf("err = %v, want %q\n%s", err, tt.wantErr, out.String())
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}
