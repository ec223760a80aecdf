package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"time"

	"github.com/jitproxy/jitproxy/test/servers"
)

// revocations runs a real redis-server and two jitproxy replicas on it,
// A and B (B with A's CA, so that the agent trusts both), and measures n
// times how long after replica A acknowledges a revocation replica B
// denies: an agent holds a grant and sends requests in a tight loop through
// B, one at a time over one tunnel, and the harness revokes the grant
// through A's admin API. o is what both replicas share; o.dir holds
// redis-server's and each replica's directory. It prints the percentiles
// and counts the requests B answered 200 after the revocation was sent.
func revocations(ctx context.Context, w io.Writer, o jitproxyOptions, n int) error {
	redis, err := servers.StartRedis(ctx, o.dir)
	if err != nil {
		return err
	}
	defer redis.Stop()
	o.redis = redis.Addr
	oa, ob := o, o
	oa.dir, ob.dir = filepath.Join(o.dir, "replica-a"), filepath.Join(o.dir, "replica-b")
	a, err := startJitproxy(ctx, oa)
	if err != nil {
		return fmt.Errorf("replica A: %w", err)
	}
	defer a.stop()
	ob.caFrom = a.state
	b, err := startJitproxy(ctx, ob)
	if err != nil {
		return fmt.Errorf("replica B: %w", err)
	}
	defer b.stop()

	adm := newAdmin(a)
	var fromAck, fromSent, period result
	var inFlight, duringCall, afterAck, afterDeny int
	other := map[string]int{}
	for i := range n {
		r, err := revocation(ctx, adm, b, fmt.Sprintf("rev-%d", i))
		if err != nil {
			return fmt.Errorf("revocation %d: %w\nreplica A's log, last lines:\n%s\nreplica B's log, last lines:\n%s", i, err, a.logTail(10), b.logTail(10))
		}
		fromAck.latencies = append(fromAck.latencies, r.denied.Sub(r.acked))
		fromSent.latencies = append(fromSent.latencies, r.denied.Sub(r.sent))
		period.latencies = append(period.latencies, r.period)
		inFlight += r.inFlight
		duringCall += r.duringCall
		afterAck += r.afterAck
		afterDeny += r.afterDeny
		for k, v := range r.other {
			other[k] += v
		}
	}

	fmt.Fprintf(w, "\nrevocation on replica A → first 403 on replica B (%d, real redis-server, one request at a time through B)\n", n)
	latencyTable(w, []float64{50, 90, 0, 100},
		latencyRow{"from the revoke's answer", &fromAck},
		latencyRow{"from the revoke's request", &fromSent},
		latencyRow{"B's request time (resolution)", &period})
	fmt.Fprintf(w, "B's 200s once the revoke was sent: %d sent after A answered, %d sent before A answered, %d in flight when A answered, %d after B's first 403 (of 20 requests more each time)\n",
		afterAck, duringCall, inFlight, afterDeny)
	if len(other) > 0 {
		fmt.Fprintf(w, "B's answers other than 200 and 403: %s\n", tally(other))
	}
	return nil
}

// revoked is one revocation, measured.
type revoked struct {
	sent, acked time.Time // the revoke request to A, and A's answer
	denied      time.Time // B's first 403 arrived
	period      time.Duration
	// 200s of B: after its first 403 (the loop goes on for 20 requests);
	// before it, sent after A answered the revoke (afterAck), sent while A
	// had not answered (duringCall), and sent before the revoke but
	// answered after A answered (inFlight).
	afterDeny, afterAck, duringCall, inFlight int
	other                                     map[string]int // answers neither 200 nor 403
}

// sample is one request of the loop through B.
type sample struct {
	sent, done time.Time
	status     int // 0: a transport error
}

// revocation creates a session for user through A, requests its grant
// through A, has the agent loop through B, revokes the grant through A
// once B has answered 200 for 100 ms, and waits for B's first 403.
func revocation(ctx context.Context, adm *admin, b *jitproxy, user string) (revoked, error) {
	ag, err := adm.newAgent(ctx, user)
	if err != nil {
		return revoked{}, err
	}
	defer adm.endSession(context.WithoutCancel(ctx), ag.session)
	grant, err := adm.requestGrant(ctx, ag)
	if err != nil {
		return revoked{}, err
	}
	viaB := *ag.proxy
	viaB.Host = b.proxyAddr
	s := ag.subject()
	s.proxy = &viaB
	c := newClient(s.roots, s.proxy, 1)
	defer c.CloseIdleConnections()
	// The grant's first request through B: B mints and caches its credential.
	if err := get(ctx, s, c); err != nil {
		return revoked{}, fmt.Errorf("first request through B: %w", err)
	}

	samples := make(chan []sample, 1)
	go func() { samples <- loop(ctx, s, c, 10*time.Second) }()
	time.Sleep(100 * time.Millisecond)
	var r revoked
	r.sent = time.Now()
	if err := adm.revoke(ctx, grant); err != nil {
		<-samples
		return revoked{}, err
	}
	r.acked = time.Now()
	got := <-samples

	r.other = map[string]int{}
	var served []time.Duration
	for _, x := range got {
		served = append(served, x.done.Sub(x.sent))
		switch {
		case x.status == http.StatusForbidden:
			if r.denied.IsZero() {
				r.denied = x.done
			}
		case x.status != http.StatusOK:
			r.other[statusName(x.status)]++
		case !r.denied.IsZero():
			r.afterDeny++
		case x.sent.After(r.acked):
			r.afterAck++
		case x.sent.After(r.sent):
			r.duringCall++
		case x.done.After(r.acked):
			r.inFlight++
		}
	}
	if r.denied.IsZero() {
		return revoked{}, fmt.Errorf("B did not deny within 10s of the loop's start (%d requests, other answers %v)", len(got), r.other)
	}
	r.period = (&result{latencies: served}).percentile(50)
	return r, nil
}

// loop sends s's request over c back to back until a transport error, d,
// or 20 requests after the first 403 (any 200 among those would be a
// revocation undone), and returns every request.
func loop(ctx context.Context, s *subject, c *http.Client, d time.Duration) []sample {
	var out []sample
	end := time.Now().Add(d)
	after := -1 // requests since the first 403
	for time.Now().Before(end) && ctx.Err() == nil && after < 20 {
		x := sample{sent: time.Now()}
		status, _, err := do(ctx, s, c)
		x.done = time.Now()
		if err == nil {
			x.status = status
		}
		out = append(out, x)
		if err != nil {
			break
		}
		if after >= 0 || status == http.StatusForbidden {
			after++
		}
	}
	return out
}

// statusName names an HTTP status, 0 being a transport error.
func statusName(status int) string {
	if status == 0 {
		return "error"
	}
	return fmt.Sprintf("%d", status)
}
