package jit

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alicebob/miniredis/v2"
	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit/audittest"
)

// BenchmarkActiveGrants measures the data plane's lookup of a session's
// grants in force with 1, 100 and 1,000 access policies and as many
// grants of other users, as every request makes it: from the in-process
// cache, which a change anywhere empties.
func BenchmarkActiveGrants(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("policies=%d,grants=%d", n, n), func(b *testing.B) {
			var yaml strings.Builder
			for i := range n {
				fmt.Fprintf(&yaml, `---
apiVersion: jitproxy.dev/v1alpha1
kind: AccessPolicy
metadata: {name: policy-%d}
spec:
  target: demo
  subjects: {groups: [developers]}
  namespaces: [demo]
  permissions: [{verbs: [get, list], apiGroups: [""], resources: [pods]}]
  duration: {default: 15m, max: 1h}
  credential: {provider: tokenrequest}
`, i)
			}
			ps, err := ParsePolicies("bench.yaml", []byte(yaml.String()))
			if err != nil {
				b.Fatal(err)
			}
			set, err := NewPolicies(ps)
			if err != nil {
				b.Fatal(err)
			}
			ids, err := NewIdentities(nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			rdb := redis.NewClient(&redis.Options{Addr: miniredis.RunT(b).Addr()})
			b.Cleanup(func() { rdb.Close() })
			clk := &clock{t: time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)}
			f := &fixture{clock: clk, audit: &audittest.Log{}}
			f.svc, err = New(Config{Redis: rdb, Policies: set, Identities: ids, Audit: f.audit, Targets: []string{"demo"}, Now: clk.Now})
			if err != nil {
				b.Fatal(err)
			}
			runReplica(b, f)
			for i := range n {
				user := Principal{Name: fmt.Sprintf("user-%d", i), Groups: []string{"developers"}}
				f.request(b, user, fmt.Sprintf("policy-%d", i))
			}
			s, _ := f.session(b, "alice", "developers")
			f.request(b, alice, "policy-0")
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				a, err := f.svc.ActiveGrants(ctx, s.ID)
				if err != nil || len(a.Grants) != 1 {
					b.Fatalf("ActiveGrants() = %v, %v; want one grant", a, err)
				}
			}
		})
	}
}
