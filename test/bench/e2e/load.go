package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"syscall"
	"time"
)

// path is the request every client makes.
const path = "/api/v1/namespaces/demo/pods"

// subject is one way of reaching the fake apiserver: a keep-alive HTTP/1.1
// client, the URL it asks for and the bearer token it sends.
type subject struct {
	name   string
	roots  *x509.CertPool // the CAs the client trusts
	proxy  *url.URL       // nil: direct
	client *http.Client   // kept alive across runs
	url    string
	token  string
	cpu    func() (time.Duration, error) // the proxy process's CPU time; nil: not measured
}

// newClient is an HTTP/1.1 client trusting roots, through proxy if not
// nil, keeping up to maxConns connections alive.
func newClient(roots *x509.CertPool, proxy *url.URL, maxConns int) *http.Client {
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: roots},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // no HTTP/2
		MaxIdleConnsPerHost: maxConns,
		IdleConnTimeout:     5 * time.Minute,
	}
	if proxy != nil {
		tr.Proxy = http.ProxyURL(proxy)
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// result is what one or more runs against a subject measured.
type result struct {
	requests  int
	elapsed   time.Duration
	latencies []time.Duration
	cpu       time.Duration // the proxy process's, over the runs
	selfCPU   time.Duration // the harness process's, over the runs
	rates     []float64     // requests/s of each run
}

func (r *result) add(o result) {
	r.requests += o.requests
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	r.cpu += o.cpu
	r.selfCPU += o.selfCPU
	r.rates = append(r.rates, float64(o.requests)/o.elapsed.Seconds())
}

// rate is requests per second over all runs.
func (r *result) rate() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// percentile returns the p-th percentile latency (0 < p ≤ 100); it sorts
// the latencies in place.
func (r *result) percentile(p float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	slices.Sort(r.latencies)
	i := int(float64(len(r.latencies))*p/100+0.5) - 1
	return r.latencies[max(0, min(i, len(r.latencies)-1))]
}

// run has concurrency workers send requests back to back for d and records
// each request's latency. Any failed request or status other than 200 ends
// the run with an error.
func run(ctx context.Context, s *subject, concurrency int, d time.Duration) (result, error) {
	var before time.Duration
	if s.cpu != nil {
		var err error
		if before, err = s.cpu(); err != nil {
			return result{}, err
		}
	}
	selfBefore, err := selfCPU()
	if err != nil {
		return result{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	lat := make([][]time.Duration, concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	deadline := start.Add(d)
	for w := range concurrency {
		wg.Go(func() {
			for time.Now().Before(deadline) && ctx.Err() == nil {
				t0 := time.Now()
				if err := get(ctx, s, s.client); err != nil {
					cancel(err)
					return
				}
				lat[w] = append(lat[w], time.Since(t0))
			}
		})
	}
	wg.Wait()
	res := result{elapsed: time.Since(start)}
	if err := context.Cause(ctx); err != nil {
		return result{}, fmt.Errorf("%s: %w", s.name, err)
	}
	for _, l := range lat {
		res.requests += len(l)
		res.latencies = append(res.latencies, l...)
	}
	selfAfter, err := selfCPU()
	if err != nil {
		return result{}, err
	}
	res.selfCPU = selfAfter - selfBefore
	if s.cpu != nil {
		after, err := s.cpu()
		if err != nil {
			return result{}, err
		}
		res.cpu = after - before
	}
	return res, nil
}

// selfCPU returns the harness process's user plus system CPU time so far.
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// get makes s's request with c and reads the whole answer, so that the
// connection is reused. A status other than 200 is an error.
func get(ctx context.Context, s *subject, c *http.Client) error {
	status, body, err := do(ctx, s, c)
	if err != nil {
		return err
	}
	if status != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s: %.200s", s.url, status, http.StatusText(status), body)
	}
	return nil
}

// do makes s's request with c and returns the answer's status and body,
// read whole.
func do(ctx context.Context, s *subject, c *http.Client) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}
