package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"runtime"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// activation measures a grant's activation on a jitproxy of its own, run
// with o: an agent's session exists; the agent requests a pod-reader grant
// for itself (ACTIVE at once, limited to its session), and the moment the
// admin API answers, sends its first request through a new tunnel. That
// request is the grant's first, so jitproxy loads the new grant, mints its
// credential (a TokenRequest to the fake apiserver) and forwards. Each
// session has its own user, so no other grant covers it and no other
// session's grants are loaded with it. It runs single activations one at a
// time, then burst at once.
func activation(ctx context.Context, w io.Writer, o jitproxyOptions, api *fakeAPIServer, single, burst int) error {
	j, err := startJitproxy(ctx, o)
	if err != nil {
		return err
	}
	defer j.stop()
	if err := activationSingle(ctx, w, j, api, single); err != nil {
		return fmt.Errorf("%w\njitproxy's log, last lines:\n%s", err, j.logTail(20))
	}
	if err := activationBurst(ctx, w, j, api, burst); err != nil {
		return fmt.Errorf("%w\njitproxy's log, last lines:\n%s", err, j.logTail(20))
	}
	// The profile is complete once jitproxy has exited.
	j.stop()
	printProfile(w, "jitproxy", "the activations", o.cpuProfile)
	return nil
}

// activationSingle measures n activations one after another, each in a
// fresh session, and prints the percentiles of the grant request, of
// activation → first 200, and of a second new tunnel right after (the
// credential then cached), which is the part of the first request that
// is not the activation's. One activation before them, not measured,
// warms jitproxy up (its leaf certificate for the target's host, its
// connections to the fake apiserver).
func activationSingle(ctx context.Context, w io.Writer, j *jitproxy, api *fakeAPIServer, n int) error {
	a := newAdmin(j)
	if _, err := activateOnce(ctx, a, "act-warm-up"); err != nil {
		return err
	}
	var request, first, second result
	since := time.Now()
	for i := range n {
		d, err := activateOnce(ctx, a, fmt.Sprintf("act-%d", i))
		if err != nil {
			return fmt.Errorf("activation %d: %w", i, err)
		}
		request.latencies = append(request.latencies, d[0])
		first.latencies = append(first.latencies, d[1])
		second.latencies = append(second.latencies, d[2])
	}
	mints := len(api.mintsSince(since))

	fmt.Fprintf(w, "\ngrant activation → first 200, one at a time (%d, each in a new session, %d TokenRequests)\n", n, mints)
	return latencyTable(w, []float64{50, 90, 100},
		latencyRow{"grant request (ACTIVE)", &request},
		latencyRow{"activation → first 200", &first},
		latencyRow{"second new tunnel → 200", &second})
}

// activateOnce creates a session for user, requests its grant as the agent
// and, once ACTIVE, makes the first request through a new tunnel and then
// one more through another; it ends the session. It returns how long the
// grant request, the first and the second request took.
func activateOnce(ctx context.Context, a *admin, user string) ([3]time.Duration, error) {
	var d [3]time.Duration
	ag, err := a.newAgent(ctx, user)
	if err != nil {
		return d, err
	}
	t0 := time.Now()
	if _, err := a.requestGrant(ctx, ag); err != nil {
		return d, err
	}
	acked := time.Now()
	if err := getOnce(ctx, ag.subject()); err != nil {
		return d, fmt.Errorf("first request: %w", err)
	}
	done := time.Now()
	if err := getOnce(ctx, ag.subject()); err != nil {
		return d, fmt.Errorf("second request: %w", err)
	}
	d = [3]time.Duration{acked.Sub(t0), done.Sub(acked), time.Since(done)}
	return d, a.endSession(ctx, ag.session)
}

// getOnce makes s's request through a new client (a new tunnel) and closes
// it.
func getOnce(ctx context.Context, s *subject) error {
	c := newClient(s.roots, s.proxy, 1)
	defer c.CloseIdleConnections()
	return get(ctx, s, c)
}

// burstOutcome is what one agent of the burst saw.
type burstOutcome struct {
	request time.Duration // the grant request, until the admin API answered
	first   time.Duration // from that answer to the first 200
	other   []string      // answers before the first 200 that were not 200
}

// activationBurst creates n sessions, each of which opens its tunnel with
// a denied request, then has every agent request its grant at the same
// moment and send its first request through its tunnel as soon as the
// admin API answers ACTIVE, retrying every 100 ms after anything but 200 (for 30 s at
// most). It prints the distribution of first 200 − activation, how many
// took over 100 ms, what the agents got before their 200s, when the fake
// apiserver saw the n TokenRequests and the CPU time jitproxy and the
// harness spent meanwhile. Then, for comparison, every agent opens a new
// tunnel again at the same moment, its grant's credential now cached.
func activationBurst(ctx context.Context, w io.Writer, j *jitproxy, api *fakeAPIServer, n int) error {
	a := newAdmin(j)
	var agents []*agent
	defer func() {
		for _, ag := range agents {
			a.endSession(context.WithoutCancel(ctx), ag.session)
		}
	}()
	for i := range n {
		ag, err := a.newAgent(ctx, fmt.Sprintf("burst-%d", i))
		if err != nil {
			return err
		}
		agents = append(agents, ag)
	}

	// Each agent first tries its request and is denied, as an agent does
	// before it asks for a grant: its tunnel is then open, and the burst
	// measures the activation rather than 100 TLS handshakes at once.
	clients := make([]*http.Client, n)
	for i, ag := range agents {
		s := ag.subject()
		clients[i] = newClient(s.roots, s.proxy, 1)
		defer clients[i].CloseIdleConnections()
		if status, body, err := do(ctx, s, clients[i]); err != nil || status != http.StatusForbidden {
			return fmt.Errorf("session %s before its grant: %d %v %.200s; want 403", ag.session, status, err, body)
		}
	}

	out := make([]burstOutcome, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, ag := range agents {
		wg.Go(func() {
			<-start
			out[i], errs[i] = firstRequest(ctx, a, ag, clients[i])
		})
	}
	cpu0, err := cpuOf(j)
	if err != nil {
		return err
	}
	conns0 := api.connections()
	since := time.Now()
	close(start)
	wg.Wait()
	wall := time.Since(since)
	conns := api.connections() - conns0
	cpu1, err := cpuOf(j)
	if err != nil {
		return err
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("activation burst: %w", err)
	}
	mints := api.mintsSince(since)

	// Again, every grant's credential cached: new tunnels only.
	var again result
	again.latencies = make([]time.Duration, n)
	start = make(chan struct{})
	for i, ag := range agents {
		wg.Go(func() {
			<-start
			t0 := time.Now()
			errs[i] = getOnce(ctx, ag.subject())
			again.latencies[i] = time.Since(t0)
		})
	}
	close(start)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("activation burst, again: %w", err)
	}

	var request, first result
	slow, retried := 0, 0
	other := map[string]int{}
	for _, o := range out {
		request.latencies = append(request.latencies, o.request)
		first.latencies = append(first.latencies, o.first)
		if o.first > 100*time.Millisecond {
			slow++
		}
		if len(o.other) > 0 {
			retried++
		}
		for _, s := range o.other {
			other[s]++
		}
	}
	fmt.Fprintf(w, "\ngrant activation → first 200, %d at once (each in its own session, through its open tunnel)\n", n)
	latencyTable(w, []float64{50, 90, 99, 100},
		latencyRow{"grant request (ACTIVE)", &request},
		latencyRow{"activation → first 200", &first},
		latencyRow{"again, at once: new tunnel → 200", &again})
	fmt.Fprintf(w, "first 200 more than 100ms after activation: %d of %d; %s\n", slow, n, buckets(first.latencies))
	if retried == 0 {
		fmt.Fprintln(w, "every agent's first answer was its 200")
	} else {
		fmt.Fprintf(w, "%d agents got other answers first (retried after 100ms): %s\n", retried, tally(other))
	}
	if len(mints) > 0 {
		fmt.Fprintf(w, "TokenRequests at the fake apiserver: %d, from %s to %s after the burst began, over %d new connections\n",
			len(mints), ms(mints[0].Sub(since)), ms(mints[len(mints)-1].Sub(since)), conns)
	}
	fmt.Fprintf(w, "CPU time during the burst (%s wall, %d CPUs): jitproxy %s, harness (agents, fake apiserver) %s\n",
		ms(wall), runtime.NumCPU(), ms(cpu1.jitproxy-cpu0.jitproxy), ms(cpu1.harness-cpu0.harness))
	return nil
}

// cpuTimes are the CPU times of jitproxy and of the harness so far.
type cpuTimes struct{ jitproxy, harness time.Duration }

func cpuOf(j *jitproxy) (cpuTimes, error) {
	jc, err := j.cpu()
	if err != nil {
		return cpuTimes{}, err
	}
	hc, err := selfCPU()
	return cpuTimes{jc, hc}, err
}

// firstRequest is one agent of the burst: it requests its grant, then
// sends requests with c, whose tunnel is open, until the first 200.
func firstRequest(ctx context.Context, a *admin, ag *agent, c *http.Client) (burstOutcome, error) {
	var o burstOutcome
	t0 := time.Now()
	if _, err := a.requestGrant(ctx, ag); err != nil {
		return o, err
	}
	acked := time.Now()
	o.request = acked.Sub(t0)
	s := ag.subject()
	for {
		status, body, err := do(ctx, s, c)
		if err == nil && status == http.StatusOK {
			o.first = time.Since(acked)
			return o, nil
		}
		if err != nil {
			status = 0
		}
		o.other = append(o.other, statusName(status))
		if time.Since(acked) > 30*time.Second {
			return o, fmt.Errorf("session %s: no 200 within 30s of activation; last: %d %v %.200s", ag.session, status, err, body)
		}
		select {
		case <-ctx.Done():
			return o, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// buckets counts ds by upper bounds, for a distribution on one line.
func buckets(ds []time.Duration) string {
	bounds := []time.Duration{10 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, time.Second, 10 * time.Second}
	counts := make([]int, len(bounds)+1)
	for _, d := range ds {
		i, _ := slices.BinarySearch(bounds, d)
		counts[i]++
	}
	var parts []string
	for i, b := range bounds {
		parts = append(parts, fmt.Sprintf("≤%s: %d", b, counts[i]))
	}
	parts = append(parts, fmt.Sprintf(">%s: %d", bounds[len(bounds)-1], counts[len(bounds)]))
	return strings.Join(parts, ", ")
}

// tally formats counts by name, in the order of the names.
func tally(m map[string]int) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s ×%d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// latencyRow is one row of a latencyTable.
type latencyRow struct {
	name string
	r    *result
}

// latencyTable writes rows' percentiles ps (0 is the minimum, 100 the
// maximum) in milliseconds, a column each, aligned.
func latencyTable(w io.Writer, ps []float64, rows ...latencyRow) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	for _, p := range ps {
		switch p {
		case 0:
			fmt.Fprint(tw, "\tmin")
		case 100:
			fmt.Fprint(tw, "\tmax")
		default:
			fmt.Fprintf(tw, "\tp%g", p)
		}
	}
	fmt.Fprintln(tw, "\t")
	for _, row := range rows {
		fmt.Fprint(tw, row.name)
		for _, p := range ps {
			fmt.Fprintf(tw, "\t%s", ms(row.r.percentile(p)))
		}
		fmt.Fprintln(tw, "\t")
	}
	return tw.Flush()
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.1fms", float64(d)/float64(time.Millisecond)) }
