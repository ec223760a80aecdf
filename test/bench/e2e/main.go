// Command e2e is jitproxy's end-to-end benchmark (`make bench-e2e`): it
// measures, side by side in one process tree, a direct TLS client, a bare
// goproxy MITM pass-through (this binary run again, in a process of its
// own), the real jitproxy binary, and goproxy with jitproxy's audit (a
// third process: goproxy recording the same two events per request
// through internal/audit to a file sink, the floor of an audited MITM; see
// audited.go), each sending GET /api/v1/namespaces/demo/pods over HTTP/1.1
// keep-alive to the same local fake apiserver, in interleaved rounds at
// concurrency 1 and 8. It prints requests/s, latency percentiles, the
// proxies' CPU per request (from /proc, so Linux only) and the ratios to
// direct, to goproxy and to goproxy with audit; then the first request
// over a new connection for each, jitproxy's resident memory per idle
// tunnel, and the number and size of the audit records each audited proxy
// wrote.
//
// jitproxy runs with an active pod-reader grant, its TokenRequest
// credential cached after the warm-up, and audit to a file (-no-audit:
// none, and no goproxy with audit); -cpuprofile DIR profiles it and both
// goproxies over these sections.
//
// Then, each with a jitproxy of its own: a grant's activation to the
// agent's first 200, one at a time and -burst at once (activation.go); and
// a revocation on one replica to the first 403 on another, over a real
// redis-server (replicas.go).
//
// The numbers are for comparison on one machine; nothing here asserts them.
package main

import (
	"context"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"
)

func main() {
	if f := os.Getenv(goproxyChildEnv); f != "" {
		if err := serveGoproxyChild(f); err != nil {
			fmt.Fprintln(os.Stderr, "bench-e2e goproxy:", err)
			os.Exit(1)
		}
		return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := runBench(ctx, os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "bench-e2e:", err)
		os.Exit(1)
	}
}

// concurrencies are the numbers of concurrent clients measured.
var concurrencies = []int{1, 8}

// runBench parses flags, starts the fake apiserver, goproxy and jitproxy,
// runs the rounds and writes the report to stdout.
func runBench(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("bench-e2e", flag.ContinueOnError)
	duration := fs.Duration("duration", 5*time.Second, "duration of each measured run")
	rounds := fs.Int("rounds", 3, "rounds; each runs every subject at every concurrency once")
	bin := fs.String("jitproxy", "", "jitproxy binary to measure; empty: build ./cmd/proxy")
	profDir := fs.String("cpuprofile", "", "write CPU profiles to DIR: jitproxy.cpu.pprof, goproxy.cpu.pprof and goproxy-audit.cpu.pprof (the throughput sections), jitproxy-activation.cpu.pprof")
	skipRounds := fs.Bool("skip-rounds", false, "skip the rounds, new connections and idle tunnels: only the activations and revocations")
	skipActivation := fs.Bool("skip-activation", false, "skip grant activation → first request")
	activations := fs.Int("activations", 20, "grant activations measured one at a time")
	burst := fs.Int("burst", 100, "grant activations measured at once, each in its own session")
	skipReplicas := fs.Bool("skip-replicas", false, "skip revocation on one replica → deny on another")
	revokes := fs.Int("revocations", 20, "revocations measured across replicas")
	clientQPS := fs.Float64("client-qps", 0, "the target's client.qps in every jitproxy's configuration; 0: not set (jitproxy's default)")
	clientBurst := fs.Int("client-burst", 0, "the target's client.burst; 0: not set (jitproxy's default)")
	noAudit := fs.Bool("no-audit", false, "run jitproxy without any audit sink, to see what audit costs (never how to run it)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rounds < 1 || *duration <= 0 || *activations < 1 || *burst < 1 || *revokes < 1 {
		return errors.New("-rounds, -duration, -activations, -burst and -revocations must be positive")
	}
	// profile is the path of a CPU profile for name, or "" without -cpuprofile.
	profile := func(name string) string { return "" }
	if *profDir != "" {
		if err := os.MkdirAll(*profDir, 0o755); err != nil {
			return err
		}
		d, err := filepath.Abs(*profDir)
		if err != nil {
			return err
		}
		profile = func(name string) string { return filepath.Join(d, name+".cpu.pprof") }
	}

	api := newFakeAPIServer()
	defer api.Close()
	apiCAs := x509.NewCertPool()
	apiCAs.AddCert(api.Certificate())

	dir, err := os.MkdirTemp("", "jitproxy-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)

	if *bin == "" {
		if *bin, err = buildJitproxy(ctx, dir); err != nil {
			return err
		}
	}
	opts := func(name string) jitproxyOptions {
		return jitproxyOptions{
			bin: *bin, dir: filepath.Join(dir, name), upstreamURL: api.URL, upstreamCAPEM: pemCert(api.Certificate().Raw),
			clientQPS: *clientQPS, clientBurst: *clientBurst, noAudit: *noAudit,
		}
	}
	if !*skipRounds {
		o := opts("main")
		o.cpuProfile = profile("jitproxy")
		if err := throughput(ctx, stdout, o, profile("goproxy"), profile("goproxy-audit"), dir, api, apiCAs, *rounds, *duration); err != nil {
			return err
		}
	}
	if !*skipActivation {
		o := opts("activation")
		o.cpuProfile = profile("jitproxy-activation")
		if err := activation(ctx, stdout, o, api, *activations, *burst); err != nil {
			return err
		}
	}
	if !*skipReplicas {
		if err := revocations(ctx, stdout, opts("replicas"), *revokes); err != nil {
			return err
		}
	}
	return nil
}

// throughput measures direct, goproxy, goproxy with jitproxy's audit
// (unless o has none) and a jitproxy of its own, run with o, against api:
// the rounds at every concurrency, then the first request over a new
// connection, then jitproxy's memory per idle tunnel; it writes the
// report. Each goproxy is a process of its own, with its files under dir
// and its CPU profile in gpProfile and gpaProfile unless they are empty.
func throughput(ctx context.Context, stdout io.Writer, o jitproxyOptions, gpProfile, gpaProfile, dir string, api *fakeAPIServer, apiCAs *x509.CertPool, rounds int, duration time.Duration) error {
	gp, err := startGoproxy(filepath.Join(dir, "goproxy"), pemCert(api.Certificate().Raw), goproxyOptions{cpuProfile: gpProfile})
	if err != nil {
		return err
	}
	defer gp.stop()
	gpCAs := x509.NewCertPool()
	gpCAs.AddCert(gp.ca)
	// goproxy with jitproxy's audit, unless jitproxy runs without.
	var gpa *goproxyProcess
	gpaDir := filepath.Join(dir, "goproxy-audit")
	if !o.noAudit {
		if gpa, err = startGoproxy(gpaDir, pemCert(api.Certificate().Raw), goproxyOptions{cpuProfile: gpaProfile, auditDir: gpaDir}); err != nil {
			return err
		}
		defer gpa.stop()
	}

	j, err := startJitproxy(ctx, o)
	if err != nil {
		return err
	}
	defer j.stop()
	if err := j.benchSession(ctx); err != nil {
		return err
	}
	jCAs := x509.NewCertPool()
	if !jCAs.AppendCertsFromPEM(j.caPEM) {
		return errors.New("session create: no CA certificate")
	}
	jURL, err := url.Parse(j.proxyURL)
	if err != nil {
		return fmt.Errorf("session proxy URL: %w", err)
	}
	gpURL, _ := url.Parse(gp.url)

	maxConns := concurrencies[len(concurrencies)-1]
	subjects := []*subject{
		{name: "direct", roots: apiCAs, url: api.URL + path, token: mintedToken},
		{name: "goproxy", roots: gpCAs, proxy: gpURL, url: api.URL + path, token: mintedToken, cpu: gp.cpu},
		{name: "jitproxy", roots: jCAs, proxy: jURL, url: j.server + path, token: agentToken, cpu: j.cpu},
	}
	jSubject := subjects[2]
	if gpa != nil {
		gpaCAs := x509.NewCertPool()
		gpaCAs.AddCert(gpa.ca)
		gpaURL, _ := url.Parse(gpa.url)
		subjects = append(subjects, &subject{name: goproxyAudited, roots: gpaCAs, proxy: gpaURL, url: api.URL + path, token: mintedToken, cpu: gpa.cpu})
	}
	for _, s := range subjects {
		s.client = newClient(s.roots, s.proxy, maxConns)
	}

	// Warm up: open every connection, mint and cache jitproxy's credential.
	for _, s := range subjects {
		if _, err := run(ctx, s, maxConns, 500*time.Millisecond); err != nil {
			return fmt.Errorf("warm-up: %w\njitproxy's log, last lines:\n%s", err, j.logTail(20))
		}
	}

	results := map[int]map[string]*result{}
	for _, c := range concurrencies {
		results[c] = map[string]*result{}
		for _, s := range subjects {
			results[c][s.name] = &result{}
		}
	}
	for r := range rounds {
		for _, c := range concurrencies {
			// Rotate the order so that no subject always runs first.
			for i := range subjects {
				s := subjects[(i+r)%len(subjects)]
				res, err := run(ctx, s, c, duration)
				if err != nil {
					return fmt.Errorf("%w\njitproxy's log, last lines:\n%s", err, j.logTail(20))
				}
				results[c][s.name].add(res)
			}
		}
		fmt.Fprintf(os.Stderr, "round %d of %d done\n", r+1, rounds)
	}
	for _, c := range concurrencies {
		report(stdout, c, rounds, duration, results[c])
	}
	if err := newTunnels(ctx, stdout, subjects, 50); err != nil {
		return err
	}
	// A session may hold 64 tunnels; maxConns are already open.
	if err := idleTunnels(ctx, stdout, jSubject, j.rss, 40); err != nil {
		return err
	}
	// The profiles and audit files are complete once the proxies have exited.
	j.stop()
	gp.stop()
	if gpa != nil {
		gpa.stop()
		if err := auditSizes(stdout, map[string]string{"jitproxy": o.auditFile(), goproxyAudited: filepath.Join(gpaDir, "audit.jsonl")}); err != nil {
			return err
		}
	}
	printProfile(stdout, "jitproxy", "the sections above", o.cpuProfile)
	printProfile(stdout, "goproxy", "the sections above", gpProfile)
	if gpa != nil {
		printProfile(stdout, goproxyAudited, "the sections above", gpaProfile)
	}
	return nil
}

// printProfile says where the CPU profile of what the subject did is, if
// there is one, and how to read it.
func printProfile(w io.Writer, subject, what, path string) {
	if path != "" {
		fmt.Fprintf(w, "\n%s's CPU profile of %s: %s\n  go tool pprof -top %s\n", subject, what, path, path)
	}
}

// report writes one concurrency's table and ratios.
func report(w io.Writer, concurrency, rounds int, d time.Duration, rs map[string]*result) {
	fmt.Fprintf(w, "\nconcurrency %d (%d rounds of %s, HTTP/1.1 keep-alive)\n", concurrency, rounds, d)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\treq/s\trounds' req/s\tp50\tp90\tp99\tp99.9\tCPU/req\tharness CPU/req\t")
	for _, name := range []string{"direct", "goproxy", "jitproxy", goproxyAudited} {
		r := rs[name]
		if r == nil {
			continue
		}
		cpu := "-"
		if r.cpu > 0 {
			cpu = us(perRequest(r.cpu, r))
		}
		lo, hi := r.rates[0], r.rates[0]
		for _, x := range r.rates {
			lo, hi = min(lo, x), max(hi, x)
		}
		fmt.Fprintf(tw, "%s\t%.0f\t%.0f–%.0f\t%s\t%s\t%s\t%s\t%s\t%s\t\n", name, r.rate(), lo, hi,
			us(r.percentile(50)), us(r.percentile(90)), us(r.percentile(99)), us(r.percentile(99.9)), cpu, us(perRequest(r.selfCPU, r)))
	}
	tw.Flush()
	direct, gp, jp := rs["direct"], rs["goproxy"], rs["jitproxy"]
	gpAdded := gp.percentile(50) - direct.percentile(50)
	jpAdded := jp.percentile(50) - direct.percentile(50)
	fmt.Fprintf(w, "throughput: jitproxy/direct %.2f×, jitproxy/goproxy %.2f×, goproxy/direct %.2f×\n",
		jp.rate()/direct.rate(), jp.rate()/gp.rate(), gp.rate()/direct.rate())
	fmt.Fprintf(w, "added p50 over direct: goproxy %s, jitproxy %s (%.1f× goproxy's); p99 jitproxy/goproxy %.1f×\n",
		us(gpAdded), us(jpAdded), float64(jpAdded)/float64(gpAdded), float64(jp.percentile(99))/float64(gp.percentile(99)))
	fmt.Fprintf(w, "CPU/req: jitproxy/goproxy %.1f×\n", float64(perRequest(jp.cpu, jp))/float64(perRequest(gp.cpu, gp)))
	if ga := rs[goproxyAudited]; ga != nil {
		gaAdded := ga.percentile(50) - direct.percentile(50)
		fmt.Fprintf(w, "against %s: throughput %.2f×, added p50 %.1f×, p99 %.1f×, CPU/req %.1f× (its own: %.2f× goproxy's throughput, %.1f× its CPU/req)\n",
			goproxyAudited, jp.rate()/ga.rate(), float64(jpAdded)/float64(gaAdded), float64(jp.percentile(99))/float64(ga.percentile(99)),
			float64(perRequest(jp.cpu, jp))/float64(perRequest(ga.cpu, ga)), ga.rate()/gp.rate(), float64(perRequest(ga.cpu, ga))/float64(perRequest(gp.cpu, gp)))
	}
}

// goproxyAudited names the subject that is goproxy with jitproxy's audit
// (see goproxyAuditEnv).
const goproxyAudited = "goproxy+audit"

// auditSizes prints the number and mean size of the records in each
// subject's audit file, so that a reader can check that both recorded
// about the same.
func auditSizes(w io.Writer, files map[string]string) error {
	fmt.Fprintf(w, "\naudit records delivered to the file sink (all sections)\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "\trecords\tmean bytes\t")
	for _, name := range slices.Sorted(maps.Keys(files)) {
		n, mean, err := auditFileSize(files[name])
		if err != nil {
			return fmt.Errorf("audit file of %s: %w", name, err)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t\n", name, n, mean)
	}
	return tw.Flush()
}

// perRequest is d divided by r's requests.
func perRequest(d time.Duration, r *result) time.Duration {
	return d / time.Duration(max(1, r.requests))
}

// us formats a duration in microseconds.
func us(d time.Duration) string { return fmt.Sprintf("%.0fµs", float64(d)/float64(time.Microsecond)) }
