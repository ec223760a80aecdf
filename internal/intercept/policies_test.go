package intercept

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/google/go-cmp/cmp"
)

// swappedPolicies is a PolicySource whose set a test replaces, as a reload
// does.
type swappedPolicies struct{ cur atomic.Pointer[PolicySet] }

func (s *swappedPolicies) Policies() PolicySet { return *s.cur.Load() }

func (s *swappedPolicies) set(d Decider, a Suggester) { s.cur.Store(&PolicySet{Decider: d, Access: a}) }

// withRule is objectPolicy (permit what a grant's verbs name, forbid
// hostPID) and one more rule.
func withRule(rule string) fstest.MapFS {
	fsys := objectPolicy(false)
	fsys["extra.rego"] = &fstest.MapFile{Data: []byte("package jitproxy.authz\n\n" + rule + "\n")}
	return fsys
}

// TestPoliciesReplacedBetweenRequests: each request is decided by the
// policies in force when it arrives, and a decision cached under one set
// is never served under another.
func TestPoliciesReplacedBetweenRequests(t *testing.T) {
	src := &swappedPolicies{}
	h := newHarness(t, harnessOptions{handler: &fakeKube{}, config: func(c *Config) { c.Policies = src }})
	open := newEngine(t, objectPolicy(false))
	frozen := newEngine(t, withRule(`forbid contains "reads are frozen" if input.action.kubernetes.verb == "get"`))
	h.sessions.setGrants(editorGrant())
	get := func() string {
		t.Helper()
		resp, err := h.agent().Get("https://kubernetes.demo/apis/apps/v1/namespaces/demo/deployments/web")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return "200"
		}
		return resp.Status + " " + string(b)
	}
	steps := []struct {
		name   string
		engine Decider
		want   string
	}{
		{"open", open, "200"},
		{"open again, from the cache", open, "200"},
		{"frozen", frozen, "reads are frozen"},
		{"open once more", open, "200"},
	}
	for _, st := range steps {
		src.set(st.engine, h.sessions)
		if got := get(); !strings.Contains(got, st.want) {
			t.Errorf("%s: GET = %s, want %q", st.name, got, st.want)
		}
	}
}

// TestRequestKeepsThePoliciesItArrivedUnder: a write whose policies are
// replaced while the target computes its object (between its two
// decisions) is decided to the end by the set it arrived under; the next
// request, by the new set.
func TestRequestKeepsThePoliciesItArrivedUnder(t *testing.T) {
	const deploy = "/apis/apps/v1/namespaces/demo/deployments/web"
	src := &swappedPolicies{}
	open := newEngine(t, objectPolicy(false))
	frozen := newEngine(t, withRule(`forbid contains "patches are frozen" if input.action.kubernetes.verb == "patch"`))
	kube := &fakeKube{}
	var swapped atomic.Bool
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Query().Get("dryRun") == "All" && swapped.CompareAndSwap(false, true) {
			// The reload happens while the first request is in flight.
			src.set(frozen, nil)
		}
		kube.ServeHTTP(w, r)
	})
	h := newHarness(t, harnessOptions{handler: up, config: func(c *Config) { c.Policies = src }})
	src.set(open, h.sessions)
	h.sessions.setGrants(editorGrant())
	patch := func() (int, string) {
		t.Helper()
		req, _ := http.NewRequest("PATCH", "https://kubernetes.demo"+deploy, strings.NewReader(`{"spec":{"replicas":2}}`))
		req.Header.Set("Content-Type", "application/merge-patch+json")
		resp, err := h.agent().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if status, body := patch(); status != http.StatusOK {
		t.Errorf("the request in flight at the reload: %d %s, want 200", status, body)
	}
	if status, body := patch(); status != http.StatusForbidden || !strings.Contains(body, "patches are frozen") {
		t.Errorf("the request after the reload: %d %s, want 403 patches are frozen", status, body)
	}
	want := []string{
		`minted PATCH ` + deploy + `?dryRun=All {"spec":{"replicas":2}}`,
		`minted PATCH ` + deploy + ` {"metadata":{"resourceVersion":"42"},"spec":{"replicas":2}}`,
	}
	if diff := cmp.Diff(want, kube.seen()); diff != "" {
		t.Errorf("requests at the upstream (-want +got):\n%s", diff)
	}
}

// TestNoPoliciesFailsClosed: a request that arrives while no authorization
// policies are in force is refused.
func TestNoPoliciesFailsClosed(t *testing.T) {
	h := newHarness(t, harnessOptions{config: func(c *Config) { c.Policies = PolicySet{} }})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	resp, err := h.agent().Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError || !strings.Contains(string(b), "policy evaluation failed") {
		t.Errorf("got %d %s, want 500 policy evaluation failed", resp.StatusCode, b)
	}
}
