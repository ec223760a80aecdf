package test

import (
	"compress/gzip"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	collector "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"
)

// otlpReceiver is an OTLP/HTTP trace receiver: it keeps the spans jitproxy
// exports, by name, with their string attributes.
type otlpReceiver struct {
	mu    sync.Mutex
	spans map[string]map[string]string
}

func (o *otlpReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body io.Reader = r.Body
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	b, _ := io.ReadAll(body)
	var req collector.ExportTraceServiceRequest
	if r.URL.Path != "/v1/traces" || proto.Unmarshal(b, &req) != nil {
		http.Error(w, "not an OTLP trace export", http.StatusBadRequest)
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rs := range req.ResourceSpans {
		for _, ss := range rs.ScopeSpans {
			for _, s := range ss.Spans {
				attrs := map[string]string{}
				for _, kv := range s.Attributes {
					attrs[kv.Key] = kv.Value.GetStringValue()
				}
				o.spans[s.Name] = attrs
			}
		}
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.Write(nil)
}

func (o *otlpReceiver) names() []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for n := range o.spans {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// TestTracing: with tracing on, the admin API's calls and the requests
// forwarded to a target are spans exported over OTLP/HTTP to a collector;
// a forwarded URL's query is not in them, and no trace context reaches the
// target.
func TestTracing(t *testing.T) {
	recv := &otlpReceiver{spans: map[string]map[string]string{}}
	collectorSrv := httptest.NewServer(recv)
	t.Cleanup(collectorSrv.Close)
	const ownToken, minted = "jitproxy-own-token-tracing", "minted-token-tracing"
	api := startFakeAPIServer(t, ownToken, minted)
	dir := t.TempDir()
	write := fileWriter(t, dir)
	write("state/identities.yaml", identitiesYAML)
	cfg := write("jitproxy.yaml", fmt.Sprintf(`
state_dir: state
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
tracing: {enabled: true, endpoint: %s}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, collectorSrv.URL, api.URL, write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw}))),
		write("own-token", ownToken)))
	out := &outputs{}
	p := startJitproxy(t, cfg, filepath.Join(dir, "state"), out)
	kubeconfig := filepath.Join(dir, "agent.kubeconfig")
	p.mustCLI("session", "create", "--as", "runner", "--agent", "tracing-agent", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
	p.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--reason", "tracing")
	ag := &agent{t: t, kubectl: kubectlPath(t), kubeconfig: kubeconfig, home: filepath.Join(dir, "home"), out: out}
	ag.mustRun("get", "pods", "-n", "demo", "--chunk-size=7")

	waitUntil(t, "the spans to reach the collector", 20*time.Second, func() bool {
		names := recv.names()
		return slices.Contains(names, "admin POST /v1/sessions") && slices.Contains(names, "forward demo GET")
	})
	recv.mu.Lock()
	fwd := recv.spans["forward demo GET"]
	recv.mu.Unlock()
	if u := fwd["url.full"]; u == "" || strings.Contains(u, "?") || strings.Contains(u, "limit") {
		t.Errorf("the forwarded request's url.full = %q, want it without its query", u)
	}
	for _, r := range api.seen() {
		for _, h := range []string{"Traceparent", "Tracestate", "Baggage"} {
			if v := r.Header.Get(h); v != "" {
				t.Errorf("trace context reached the target: %s %s has %s: %s", r.Method, r.Path, h, v)
			}
		}
	}
}
