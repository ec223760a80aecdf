package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// newTunnels measures the first request over a new connection (for the
// proxies: CONNECT, then TLS to the proxy's leaf, then, for the proxy, its
// own upstream connection if it has none idle) n times per subject,
// interleaved, and prints the percentiles.
func newTunnels(ctx context.Context, w io.Writer, subjects []*subject, n int) error {
	rs := make([]result, len(subjects))
	for range n {
		for i, s := range subjects {
			c := newClient(s.roots, s.proxy, 1)
			t0 := time.Now()
			err := get(ctx, s, c)
			d := time.Since(t0)
			c.CloseIdleConnections()
			if err != nil {
				return fmt.Errorf("first request through a new tunnel: %w", err)
			}
			rs[i].latencies = append(rs[i].latencies, d)
		}
	}
	fmt.Fprintf(w, "\nfirst request over a new connection (%d each, interleaved)\n", n)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\tp50\tp90\tmax\t")
	for i, s := range subjects {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", s.name, us(rs[i].percentile(50)), us(rs[i].percentile(90)), us(rs[i].percentile(100)))
	}
	return tw.Flush()
}

// idleTunnels opens n tunnels through s, one request each, leaves them idle
// for a second and prints the growth of the proxy's resident memory per
// tunnel. RSS includes heap the Go runtime has not returned yet, so this
// is an upper bound, and noisy.
func idleTunnels(ctx context.Context, w io.Writer, s *subject, rss func() (int64, error), n int) error {
	before, err := rss()
	if err != nil {
		return err
	}
	clients := make([]*http.Client, n)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.CloseIdleConnections()
			}
		}
	}()
	for i := range clients {
		clients[i] = newClient(s.roots, s.proxy, 1)
		if err := get(ctx, s, clients[i]); err != nil {
			return fmt.Errorf("idle tunnels: %w", err)
		}
	}
	time.Sleep(time.Second)
	after, err := rss()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "\n%s resident memory: %d KiB, %d KiB with %d more idle tunnels: %.1f KiB per idle tunnel\n",
		s.name, before/1024, after/1024, n, float64(after-before)/1024/float64(n))
	return nil
}

// rss returns jitproxy's resident set size in bytes, from /proc/PID/status.
func (j *jitproxy) rss() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", j.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("VmRSS %q: %w", v, err)
			}
			return kb * 1024, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", j.cmd.Process.Pid)
}
