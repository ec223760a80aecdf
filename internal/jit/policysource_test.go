package jit

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// swappedPolicies is a PolicySource whose set a test replaces, as a reload
// does.
type swappedPolicies struct{ cur atomic.Pointer[Policies] }

func (s *swappedPolicies) AccessPolicies() *Policies { return s.cur.Load() }

func mustPolicies(t *testing.T, yaml string) *Policies {
	t.Helper()
	ps, err := ParsePolicies("test.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	set, err := NewPolicies(ps)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// reloadedPolicies replace testPolicies: reader lasts up to 2h, editor is
// gone, and auditor is new.
const reloadedPolicies = `
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: reader}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo, staging]
  permissions: [{verbs: [get, list], apiGroups: [""], resources: [pods]}]
  duration: {default: 15m, max: 2h}
  credential: {provider: tokenrequest}
---
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: auditor}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions: [{verbs: [get], apiGroups: [""], resources: [events]}]
  duration: {max: 1h}
  credential: {provider: tokenrequest}
`

// TestServiceFollowsItsPolicySource: once the source's set is replaced,
// grant requests, the policies a caller may request and suggestions use
// the new set, and a grant given before keeps the version it was given
// under.
func TestServiceFollowsItsPolicySource(t *testing.T) {
	f := newFixture(t)
	src := &swappedPolicies{}
	before, after := mustPolicies(t, testPolicies), mustPolicies(t, reloadedPolicies)
	src.cur.Store(before)
	f.svc.cfg.Policies = src
	ctx := context.Background()

	old := f.request(t, alice, "reader")
	src.cur.Store(after)

	if _, err := f.svc.RequestGrant(ctx, alice, GrantRequest{Policy: "editor", Namespace: "demo", Reason: "r"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("a grant under a removed policy: %v, want ErrNotFound", err)
	}
	long, err := f.svc.RequestGrant(ctx, alice, GrantRequest{Policy: "reader", Namespace: "demo", Duration: 2 * time.Hour, Reason: "r"})
	if err != nil {
		t.Fatalf("a grant the new version allows: %v", err)
	}
	if long.PolicyVersion != after.Get("reader").Version || long.PolicyVersion == old.PolicyVersion {
		t.Errorf("new grant's version %s, want the new policy's %s", long.PolicyVersion, after.Get("reader").Version)
	}
	f.request(t, alice, "auditor")

	got, err := f.svc.Get(ctx, alice, old.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.PolicyVersion != before.Get("reader").Version || got.State != StateActive {
		t.Errorf("the earlier grant is %s under version %s, want ACTIVE under %s", got.State, got.PolicyVersion, before.Get("reader").Version)
	}

	caller := access.Caller{User: "alice", Groups: []string{"developers"}}
	var names []string
	for _, p := range f.svc.Requestable(caller, "demo") {
		names = append(names, p.Name)
	}
	if diff := cmp.Diff([]string{"auditor", "reader"}, names); diff != "" {
		t.Errorf("Requestable (-want +got):\n%s", diff)
	}
	action := access.Action{Kind: access.KindKubernetes, Target: "demo",
		Kubernetes: &access.KubernetesAction{Verb: "delete", ResourceRequest: true, Resource: "pods", Namespace: "demo"}}
	everyone := func(_ context.Context, cs []Candidate) ([]string, error) {
		var out []string
		for _, c := range cs {
			out = append(out, c.Policy.Name)
		}
		return out, nil
	}
	s, err := f.svc.Suggest(ctx, caller, action, everyone)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"auditor", "reader"}, s.Policies); diff != "" {
		t.Errorf("Suggest among (-want +got):\n%s", diff)
	}
}
