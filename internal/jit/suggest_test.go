package jit

import (
	"context"
	"strings"
	"testing"

	"github.com/jitproxy/jitproxy/internal/access"
)

// TestSuggestNamesPendingRequests: an agent denied for want of a grant it
// already asked for is told what the request waits for, not to ask again.
func TestSuggestNamesPendingRequests(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t)
	s, _ := f.session(t, "alice", "developers")
	caller := access.Caller{Session: s.ID, User: "alice", Groups: []string{"developers"}}
	deletePod := func(ns string) access.Action {
		return access.Action{Kind: access.KindKubernetes, Target: "demo", Kubernetes: &access.KubernetesAction{Verb: "delete", ResourceRequest: true, Resource: "pods", Namespace: ns, Name: "web"}}
	}
	// The editor policy's grant would allow the delete; the reader's would not.
	permits := func(_ context.Context, cs []Candidate) ([]string, error) {
		var names []string
		for _, c := range cs {
			if c.Policy.Name == "editor" {
				names = append(names, c.Policy.Name)
			}
		}
		return names, nil
	}
	suggest := func(a access.Action) Suggestion {
		t.Helper()
		sg, err := f.svc.Suggest(ctx, caller, a, permits)
		if err != nil {
			t.Fatal(err)
		}
		return sg
	}
	if sg := suggest(deletePod("demo")); len(sg.Pending) != 0 || !strings.Contains(sg.Hint(), "Request a grant with: jitproxy grant request editor --namespace demo") {
		t.Fatalf("before any request: %+v %q", sg.Pending, sg.Hint())
	}

	g := f.request(t, alice, "editor") // namespace demo; 2 approvals from sre
	carolsOwn := f.request(t, carol, "editor")
	sg := suggest(deletePod("demo"))
	want := "Your request that would allow it is pending: grant " + g.ID + " (editor) is waiting for 2 approvals from sre until " + g.PendingUntil.Format("15:04:05Z") + "."
	if sg.Hint() != want || len(sg.Pending) != 1 || sg.Pending[0].ID == carolsOwn.ID {
		t.Errorf("Hint() = %q\nwant    %q", sg.Hint(), want)
	}
	if _, err := f.svc.Approve(ctx, bob, g.ID, "ok"); err != nil {
		t.Fatal(err)
	}
	if got := suggest(deletePod("demo")).Hint(); !strings.Contains(got, "waiting for 1 approval from sre") {
		t.Errorf("after one approval: %q", got)
	}
	// Another namespace: the pending request would not cover it.
	if sg := suggest(deletePod("staging")); len(sg.Pending) != 0 {
		t.Errorf("for staging: pending %v", sg.Pending)
	}
}
