package jit

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNamespaceMatches(t *testing.T) {
	tests := []struct {
		pat, ns string
		want    bool
	}{
		{"demo", "demo", true},
		{"demo", "demo2", false},
		{"*", "anything", true},
		{"team-*", "team-a", true},
		{"team-*", "team-", true},
		{"team-*", "team", false},
		{"team-*", "other-team-a", false},
		{"*-dev", "orders-dev", true},
		{"*-dev", "orders-dev-x", false},
		{"team-*-dev", "team-orders-dev", true},
		{"team-*-dev", "team-dev", false},
		{"team-*-dev", "team--dev", true},
		{"a*b*c", "abc", true},
		{"a*b*c", "acb", false},
		{"a*b*c", "axxbyyc", true},
	}
	for _, tt := range tests {
		if got := namespaceMatches(tt.pat, tt.ns); got != tt.want {
			t.Errorf("namespaceMatches(%q, %q) = %v, want %v", tt.pat, tt.ns, got, tt.want)
		}
	}
}

func TestNamespacePatternsValidated(t *testing.T) {
	_, err := ParsePolicies("p.yaml", []byte(strings.Replace(validPolicy, "namespaces: [demo]", `namespaces: ["team-*", "*-dev", "Team-*", "team_*", "*/x"]`, 1)))
	for _, want := range []string{`spec.namespaces[2]: pattern "Team-*" matches no DNS-1123 label`, `spec.namespaces[3]: pattern "team_*"`, `spec.namespaces[4]: pattern "*/x"`} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
	if err != nil && strings.Contains(err.Error(), "namespaces[0]") || err != nil && strings.Contains(err.Error(), "namespaces[1]") {
		t.Errorf("a valid pattern refused: %v", err)
	}
}

func TestMaxDurationValidated(t *testing.T) {
	_, err := ParsePolicies("p.yaml", []byte(strings.Replace(validPolicy, "duration: {max: 1h}",
		"duration: {max: 1h, maxFor: [{groups: [contractors], max: 10m}, {max: 2h}, {users: [x], max: 0s}]}", 1)))
	for _, want := range []string{"spec.duration.maxFor[1] needs users or groups", "spec.duration.maxFor[2] needs users or groups and a positive max"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %s", err, want)
		}
	}
}

// constrainedPolicies: team namespaces by pattern, and maximum durations
// for some groups, shorter and longer than the policy's.
const constrainedPolicies = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: team-editor}
spec:
  target: demo
  subjects: {groups: [developers, contractors]}
  namespaces: ["team-*", demo]
  permissions: [{verbs: ["*"], apiGroups: [""], resources: [pods]}]
  duration:
    default: 30m
    max: 1h
    maxFor:
      - {groups: [contractors], max: 15m}
      - {groups: [oncall], max: 8h}
  credential: {provider: tokenrequest}
`

// TestParameterConstraints: a grant's namespace must match the policy's
// names or patterns, and its duration the requester's own maximum: the
// first maxFor entry naming them, else max.
func TestParameterConstraints(t *testing.T) {
	contractor := Principal{Name: "cid", Groups: []string{"contractors"}}
	oncall := Principal{Name: "olga", Groups: []string{"developers", "oncall"}}
	// In both: the first entry that names her applies.
	both := Principal{Name: "bea", Groups: []string{"developers", "oncall", "contractors"}}
	tests := []struct {
		name      string
		by        Principal
		namespace string
		duration  time.Duration
		want      time.Duration // the grant's duration; 0: refused
		wantErr   string
	}{
		{name: "a namespace by pattern", by: alice, namespace: "team-orders", want: 30 * time.Minute},
		{name: "a namespace by name", by: alice, namespace: "demo", want: 30 * time.Minute},
		{name: "a namespace no pattern matches", by: alice, namespace: "kube-system", wantErr: `allows namespaces [team-* demo], not "kube-system"`},
		{name: "a prefix of the pattern", by: alice, namespace: "team", wantErr: `not "team"`},
		{name: "the policy's maximum", by: alice, namespace: "demo", duration: time.Hour, want: time.Hour},
		{name: "over the policy's maximum", by: alice, namespace: "demo", duration: 2 * time.Hour, wantErr: `duration 2h0m0s exceeds the maximum 1h0m0s of access policy "team-editor" for alice`},
		{name: "a shorter maximum caps the default", by: contractor, namespace: "demo", want: 15 * time.Minute},
		{name: "over a shorter maximum", by: contractor, namespace: "demo", duration: 20 * time.Minute, wantErr: "exceeds the maximum 15m0s"},
		{name: "a longer maximum", by: oncall, namespace: "demo", duration: 8 * time.Hour, want: 8 * time.Hour},
		{name: "the first entry that names the requester", by: both, namespace: "demo", duration: 2 * time.Hour, wantErr: "exceeds the maximum 15m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			f.svc.cfg.Policies = mustPolicies(t, constrainedPolicies)
			g, err := f.svc.RequestGrant(context.Background(), tt.by, GrantRequest{Policy: "team-editor", Namespace: tt.namespace, Duration: tt.duration, Reason: "r"})
			if tt.wantErr != "" {
				if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("RequestGrant() = %v, want ErrInvalid saying %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.Duration != tt.want {
				t.Errorf("duration = %s, want %s", g.Duration, tt.want)
			}
		})
	}
}

// TestPolicyListShowsTheCallersMaximum: the policy list gives each caller
// their own default and maximum.
func TestPolicyListShowsTheCallersMaximum(t *testing.T) {
	f := newFixture(t)
	f.svc.cfg.Policies = mustPolicies(t, constrainedPolicies)
	p := f.svc.policies().Get("team-editor")
	for _, tt := range []struct {
		by               Principal
		wantDef, wantMax time.Duration
	}{
		{alice, 30 * time.Minute, time.Hour},
		{Principal{Name: "cid", Groups: []string{"contractors"}}, 15 * time.Minute, 15 * time.Minute},
	} {
		if d, m := p.Duration.defaultFor(tt.by.Name, tt.by.Groups), p.Duration.maxFor(tt.by.Name, tt.by.Groups); d != tt.wantDef || m != tt.wantMax {
			t.Errorf("%s: default, max = %s, %s; want %s, %s", tt.by.Name, d, m, tt.wantDef, tt.wantMax)
		}
	}
}

// TestPolicyVersionWithoutMaxFor: a policy without maxFor hashes as it
// did before maxFor existed (pinned in policies/versions_test.go too).
func TestPolicyVersionWithoutMaxFor(t *testing.T) {
	ps, err := ParsePolicies("p.yaml", []byte(validPolicy))
	if err != nil {
		t.Fatal(err)
	}
	with, err := ParsePolicies("p.yaml", []byte(strings.Replace(validPolicy, "duration: {max: 1h}", "duration: {max: 1h, maxFor: [{groups: [x], max: 5m}]}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if ps[0].Version == with[0].Version {
		t.Error("maxFor does not change the version")
	}
}
