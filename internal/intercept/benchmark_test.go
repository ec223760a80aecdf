package intercept

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"
)

// The benchmarks of the request path run everything in one process: the
// agent's HTTP client, the proxy and the upstream. Their ns/op, cpu-ns/op
// (the process's CPU time, which other processes on the machine disturb
// less than the wall time) and allocs/op are the three together;
// BenchmarkDirectRequest is the client and the upstream alone, so the
// proxy's share is the difference. The decider allows without evaluating
// policies (OPA has its own benchmarks in internal/authz) and the auditor
// keeps nothing.
//
//	go test -run '^$' -bench 'Request' -benchmem -count 6 ./internal/intercept

// benchURL is a request that needs a grant: a list of pods.
const benchURL = "https://kubernetes.demo/api/v1/namespaces/demo/pods"

// benchProxy is a proxy whose target's transport is set as cmd/proxy sets
// it (64 idle connections per host), with a grant that allows benchURL.
func benchProxy(b *testing.B) *harness {
	h := newHarness(b, harnessOptions{
		decider:       allowDecider{},
		quietUpstream: true,
		auditor:       &countingAuditor{},
		config: func(c *Config) {
			c.Targets[0].Transport.(*http.Transport).MaxIdleConnsPerHost = 64
		},
	})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	return h
}

// benchClient keeps up to 64 connections, so that at the benchmarks'
// concurrency no request opens a tunnel after the first few.
func benchClient(b *testing.B, h *harness) *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(h.ca.CertPEM)
	tr := &http.Transport{
		Proxy:               http.ProxyURL(h.proxyURL),
		TLSClientConfig:     &tls.Config{RootCAs: pool},
		MaxIdleConnsPerHost: 64,
	}
	b.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

// directClient is the upstream's own client, keeping as many connections
// as benchClient.
func directClient(b *testing.B, h *harness) *http.Client {
	c := h.upstream.Client()
	tr := c.Transport.(*http.Transport)
	tr.MaxIdleConnsPerHost = 64
	b.Cleanup(tr.CloseIdleConnections)
	return c
}

func benchGet(c *http.Client, url string) error {
	resp, err := c.Get(url)
	if err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

// warm makes n requests at once, so that the tunnels and the upstream
// connections the benchmark will use are open.
func warm(b *testing.B, c *http.Client, url string, n int) {
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- benchGet(c, url) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
}

// cpuMeter reports the process's CPU time per operation.
type cpuMeter struct {
	start time.Duration
	ok    bool
}

// startCPU starts measuring: call it where the timer starts.
func startCPU() cpuMeter {
	t, ok := processCPU()
	return cpuMeter{start: t, ok: ok}
}

func (m cpuMeter) report(b *testing.B) {
	if t, ok := processCPU(); ok && m.ok {
		b.ReportMetric(float64(t-m.start)/float64(b.N), "cpu-ns/op")
	}
}

// benchParallelism is how many goroutines per CPU the parallel benchmarks
// run: 8 requests at a time on two cores.
const benchParallelism = 4

// BenchmarkProxyRequest is one agent's GETs, one after another, through
// one tunnel kept alive.
func BenchmarkProxyRequest(b *testing.B) {
	h := benchProxy(b)
	c := benchClient(b, h)
	warm(b, c, benchURL, 1)
	conns := h.upstreamConns.Load()
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := benchGet(c, benchURL); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
	b.ReportMetric(float64(h.upstreamConns.Load()-conns)/float64(b.N), "upstream-dials/op")
}

// BenchmarkProxyRequestParallel is GETs from benchParallelism goroutines
// per CPU, each tunnel kept alive.
func BenchmarkProxyRequestParallel(b *testing.B) {
	h := benchProxy(b)
	c := benchClient(b, h)
	b.SetParallelism(benchParallelism)
	warm(b, c, benchURL, benchParallelism*2)
	conns := h.upstreamConns.Load()
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := benchGet(c, benchURL); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu.report(b)
	b.ReportMetric(float64(h.upstreamConns.Load()-conns)/float64(b.N), "upstream-dials/op")
}

// BenchmarkDirectRequest is the client and the upstream of
// BenchmarkProxyRequest without the proxy: what the proxy adds is the
// difference.
func BenchmarkDirectRequest(b *testing.B) {
	h := benchProxy(b)
	c := directClient(b, h)
	url := h.upstream.URL + "/api/v1/namespaces/demo/pods"
	warm(b, c, url, 1)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := benchGet(c, url); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}

// BenchmarkDirectRequestParallel is BenchmarkProxyRequestParallel without
// the proxy.
func BenchmarkDirectRequestParallel(b *testing.B) {
	h := benchProxy(b)
	c := directClient(b, h)
	url := h.upstream.URL + "/api/v1/namespaces/demo/pods"
	b.SetParallelism(benchParallelism)
	warm(b, c, url, benchParallelism*2)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := benchGet(c, url); err != nil {
				b.Error(err)
				return
			}
		}
	})
	cpu.report(b)
}

// BenchmarkProxyRequestEngine is BenchmarkProxyRequest decided by the
// shipped policies (their decisions cached after the first), the baseline
// of BenchmarkProxyRequestShadow.
func BenchmarkProxyRequestEngine(b *testing.B) { benchEngine(b, false) }

// BenchmarkProxyRequestShadow is BenchmarkProxyRequestEngine with a shadow
// set, a second engine of the same policies: what shadow mode costs a
// request whose decision both sets have cached.
func BenchmarkProxyRequestShadow(b *testing.B) { benchEngine(b, true) }

func benchEngine(b *testing.B, shadow bool) {
	enforced := newEngine(b, nil)
	var shadowSet Decider
	if shadow {
		shadowSet = newEngine(b, nil)
	}
	h := newHarness(b, harnessOptions{
		decider:       enforced,
		quietUpstream: true,
		auditor:       &countingAuditor{},
		config: func(c *Config) {
			c.Targets[0].Transport.(*http.Transport).MaxIdleConnsPerHost = 64
			ps := c.Policies.(PolicySet)
			ps.Shadow = shadowSet
			c.Policies = ps
		},
	})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	c := benchClient(b, h)
	warm(b, c, benchURL, 1)
	b.ReportAllocs()
	cpu := startCPU()
	for b.Loop() {
		if err := benchGet(c, benchURL); err != nil {
			b.Fatal(err)
		}
	}
	cpu.report(b)
}
