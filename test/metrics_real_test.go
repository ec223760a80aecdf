package test

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestMetricsAndReadiness runs the real jitproxy binary with a metrics
// listener, on a real redis-server and the fake apiserver. It scrapes
// /metrics and parses it as Prometheus does (expfmt): a denied and an
// allowed kubectl request move the request counters and the stage
// histograms of their target, the allowed one mints a credential, and the
// grant shows in the grants gauge. /readyz answers 503 while Redis is
// down, and 200 again once it is back.
func TestMetricsAndReadiness(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rdb, err := servers.StartRedis(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Stop)
	const ownToken, minted = "jitproxy-own-token-metrics", "minted-token-metrics"
	api := startFakeAPIServer(t, ownToken, minted)
	state := filepath.Join(dir, "state")
	os.MkdirAll(state, 0o700)
	write := fileWriter(t, dir)
	write("state/identities.yaml", identitiesYAML)
	caPath := write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))
	tokenPath := write("own-token", ownToken)
	cfg := write("jitproxy.yaml", fmt.Sprintf(`
state_dir: state
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
metrics: {listen: 127.0.0.1:0}
redis: {address: %s}
audit: {stdout: true}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, rdb.Addr, api.URL, caPath, tokenPath))
	out := &outputs{}
	p := startJitproxy(t, cfg, state, out)
	metricsURL := "http://" + readyField(t, p, "metrics")

	get := func(path string) (int, string) {
		t.Helper()
		resp, err := http.Get(metricsURL + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get("/livez"); code != http.StatusOK {
		t.Fatalf("/livez: %d %s", code, body)
	}
	if code, body := get("/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz: %d %s", code, body)
	}

	kubeconfig := filepath.Join(dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "metrics-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	ag := &agent{t: t, kubectl: kubectlPath(t), kubeconfig: kubeconfig, home: filepath.Join(dir, "home"), out: out}

	before := scrape(t, metricsURL)
	ag.mustFail(`jitproxy denied list pods in namespace "demo"`, "get", "pods", "-n", "demo")
	p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "metrics")
	ag.mustRun("get", "pods", "-n", "demo")
	p.settledAuditEvents() // the requests' events are recorded as they end, as are their counts

	after := scrape(t, metricsURL)
	demo := map[string]string{"target": "demo", "kind": "kubernetes"}
	with := func(extra ...string) map[string]string {
		l := map[string]string{}
		for k, v := range demo {
			l[k] = v
		}
		for i := 0; i < len(extra); i += 2 {
			l[extra[i]] = extra[i+1]
		}
		return l
	}
	// kubectl's discovery requests are allowed by permit_discovery: at
	// least the denied list and the allowed one moved the counters.
	if d := value(after, "jitproxy_requests_total", with("decision", "deny")) - value(before, "jitproxy_requests_total", with("decision", "deny")); d < 1 {
		t.Errorf("denied requests moved by %v, want at least 1", d)
	}
	if d := value(after, "jitproxy_requests_total", with("decision", "allow")) - value(before, "jitproxy_requests_total", with("decision", "allow")); d < 1 {
		t.Errorf("allowed requests moved by %v, want at least 1", d)
	}
	if got := value(after, "jitproxy_requests_total", with("decision", "error")); got != 0 {
		t.Errorf("requests in error: %v, want 0", got)
	}
	for _, stage := range []string{"classify", "decide", "credential", "upstream"} {
		if d := count(after, "jitproxy_request_stage_duration_seconds", with("stage", stage)) - count(before, "jitproxy_request_stage_duration_seconds", with("stage", stage)); d < 1 {
			t.Errorf("stage %s observed %d more times, want at least 1", stage, d)
		}
	}
	if got := value(after, "jitproxy_credential_mints_total", map[string]string{"provider": "tokenrequest"}); got < 1 {
		t.Errorf("tokenrequest mints: %v, want at least 1", got)
	}
	if got := value(after, "jitproxy_credential_cache_lookups_total", map[string]string{"result": "miss"}); got < 1 {
		t.Errorf("credential cache misses: %v, want at least 1", got)
	}
	if got := value(after, "jitproxy_grants", map[string]string{"state": "ACTIVE"}); got != 1 {
		t.Errorf("ACTIVE grants: %v, want 1", got)
	}
	if got := value(after, "jitproxy_audit_events_recorded_total", map[string]string{"sink": "stdout"}); got < 1 {
		t.Errorf("audit events recorded by the stdout sink: %v, want at least 1", got)
	}

	// Redis down: not ready, and the grants cannot be counted.
	rdb.Stop()
	waitUntil(t, "/readyz to answer 503 with Redis down", 10*time.Second, func() bool {
		code, body := get("/readyz")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "redis: ")
	})
	down := scrape(t, metricsURL)
	if _, ok := down["jitproxy_grants"]; ok {
		t.Error("grants reported with Redis down")
	}
	if got := value(down, "jitproxy_grants_collect_errors_total", nil); got < 1 {
		t.Errorf("grants collect errors: %v, want at least 1", got)
	}
	if err := rdb.Restart(ctx); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "/readyz to answer 200 with Redis back", 20*time.Second, func() bool {
		code, _ := get("/readyz")
		return code == http.StatusOK
	})
}

// readyField returns a field of the "jitproxy ready" log line.
func readyField(t *testing.T, p *proxyProc, field string) string {
	t.Helper()
	sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
	for sc.Scan() {
		var line map[string]any
		if json.Unmarshal(sc.Bytes(), &line) == nil && line["msg"] == "jitproxy ready" {
			if v, _ := line[field].(string); v != "" {
				return v
			}
		}
	}
	t.Fatalf("no %s in the ready line:\n%s", field, p.stderr.String())
	return ""
}

// scrape gets /metrics and parses it as Prometheus's text format.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	mfs, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return mfs
}

// find returns the series of the family name whose labels include want.
func find(mfs map[string]*dto.MetricFamily, name string, want map[string]string) *dto.Metric {
	mf := mfs[name]
	if mf == nil {
		return nil
	}
	for _, m := range mf.GetMetric() {
		ok := true
		for k, v := range want {
			found := false
			for _, lp := range m.GetLabel() {
				if lp.GetName() == k && lp.GetValue() == v {
					found = true
				}
			}
			ok = ok && found
		}
		if ok {
			return m
		}
	}
	return nil
}

// value is a counter's or gauge's value; 0 when the series is absent.
func value(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) float64 {
	m := find(mfs, name, labels)
	if m == nil {
		return 0
	}
	if c := m.GetCounter(); c != nil {
		return c.GetValue()
	}
	return m.GetGauge().GetValue()
}

// count is a histogram's number of observations; 0 when absent.
func count(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	m := find(mfs, name, labels)
	if m == nil {
		return 0
	}
	return m.GetHistogram().GetSampleCount()
}
