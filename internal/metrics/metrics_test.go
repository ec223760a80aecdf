package metrics

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/jitproxy/jitproxy/internal/audit"
)

func TestTargetRequests(t *testing.T) {
	m := New()
	kube := m.Target("dev", "kubernetes")
	aws := m.Target("sandbox", "aws")
	kube.Request(DecisionAllow)
	kube.Request(DecisionAllow)
	kube.Request(DecisionDeny)
	aws.Request("something else")
	want := `
# HELP jitproxy_requests_total Requests through the proxy's tunnels by target, kind and decision (allow: policy allowed; deny: policy denied or the request was refused; error: jitproxy could not decide or serve it, a 5xx of its own).
# TYPE jitproxy_requests_total counter
jitproxy_requests_total{decision="allow",kind="aws",target="sandbox"} 0
jitproxy_requests_total{decision="allow",kind="kubernetes",target="dev"} 2
jitproxy_requests_total{decision="deny",kind="aws",target="sandbox"} 0
jitproxy_requests_total{decision="deny",kind="kubernetes",target="dev"} 1
jitproxy_requests_total{decision="error",kind="aws",target="sandbox"} 1
jitproxy_requests_total{decision="error",kind="kubernetes",target="dev"} 0
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want), "jitproxy_requests_total"); err != nil {
		t.Error(err)
	}
}

func TestTargetStages(t *testing.T) {
	m := New()
	tg := m.Target("dev", "kubernetes")
	tests := []struct {
		name  string
		stage string
		d     time.Duration
	}{
		{name: "classify", stage: StageClassify, d: 30 * time.Microsecond},
		{name: "decide", stage: StageDecide, d: 200 * time.Microsecond},
		{name: "credential", stage: StageCredential, d: time.Millisecond},
		{name: "upstream", stage: StageUpstream, d: 20 * time.Millisecond},
		{name: "unknown stage is ignored", stage: "other", d: time.Second},
	}
	for _, tt := range tests {
		tg.Stage(tt.stage, tt.d)
	}
	// One series per stage, each with one observation.
	if got := testutil.CollectAndCount(m.stages); got != 4 {
		t.Errorf("stage series = %d, want 4", got)
	}
	for _, tt := range tests[:4] {
		h := m.stages.WithLabelValues("dev", "kubernetes", tt.stage).(prometheus.Histogram)
		var pb dto.Metric
		if err := h.Write(&pb); err != nil {
			t.Fatal(err)
		}
		if got, want := pb.GetHistogram().GetSampleSum(), tt.d.Seconds(); got != want || pb.GetHistogram().GetSampleCount() != 1 {
			t.Errorf("%s: sum %v count %d, want sum %v count 1", tt.name, got, pb.GetHistogram().GetSampleCount(), want)
		}
	}
}

func TestTargetRecordingAllocatesNothing(t *testing.T) {
	tg := New().Target("dev", "kubernetes")
	allocs := testing.AllocsPerRun(100, func() {
		tg.Stage(StageDecide, time.Millisecond)
		tg.Request(DecisionAllow)
	})
	if allocs != 0 {
		t.Errorf("allocs per request = %v, want 0", allocs)
	}
}

func TestBroker(t *testing.T) {
	m := New()
	b := m.Broker()
	b.Lookup(CacheHit)
	b.Lookup(CacheHit)
	b.Lookup(CacheShared)
	b.Lookup(CacheMiss)
	b.Mint("vault", nil)
	b.Mint("vault", errors.New("vault down"))
	b.Mint("tokenrequest", nil)
	want := `
# HELP jitproxy_credential_cache_lookups_total Credentials asked of the broker, by where they came from: hit (this process), shared (Redis), miss (minted).
# TYPE jitproxy_credential_cache_lookups_total counter
jitproxy_credential_cache_lookups_total{result="hit"} 2
jitproxy_credential_cache_lookups_total{result="miss"} 1
jitproxy_credential_cache_lookups_total{result="shared"} 1
# HELP jitproxy_credential_mint_errors_total Mints a provider failed, by provider.
# TYPE jitproxy_credential_mint_errors_total counter
jitproxy_credential_mint_errors_total{provider="vault"} 1
# HELP jitproxy_credential_mints_total Credential mints attempted, by provider; the failed ones are counted in credential_mint_errors_total too.
# TYPE jitproxy_credential_mints_total counter
jitproxy_credential_mints_total{provider="tokenrequest"} 1
jitproxy_credential_mints_total{provider="vault"} 2
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"jitproxy_credential_cache_lookups_total", "jitproxy_credential_mint_errors_total", "jitproxy_credential_mints_total"); err != nil {
		t.Error(err)
	}
}

func TestGrants(t *testing.T) {
	tests := []struct {
		name  string
		count CountGrants
		want  string
	}{
		{
			name:  "counted",
			count: func(context.Context) (map[string]int, error) { return map[string]int{"ACTIVE": 3, "EXPIRED": 1}, nil },
			want: `
# HELP jitproxy_grants Live grants by state, read from the shared store at scrape time; absent when the store cannot be read.
# TYPE jitproxy_grants gauge
jitproxy_grants{state="ACTIVE"} 3
jitproxy_grants{state="EXPIRED"} 1
jitproxy_grants{state="PENDING"} 0
# HELP jitproxy_grants_collect_errors_total Scrapes that could not read the grants from the shared store.
# TYPE jitproxy_grants_collect_errors_total counter
jitproxy_grants_collect_errors_total 0
`,
		},
		{
			name: "store down",
			count: func(ctx context.Context) (map[string]int, error) {
				<-ctx.Done() // a Redis that does not answer: the timeout ends the wait
				return nil, ctx.Err()
			},
			want: `
# HELP jitproxy_grants_collect_errors_total Scrapes that could not read the grants from the shared store.
# TYPE jitproxy_grants_collect_errors_total counter
jitproxy_grants_collect_errors_total 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := New()
			m.RegisterGrants(tt.count, 10*time.Millisecond)
			if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(tt.want), "jitproxy_grants", "jitproxy_grants_collect_errors_total"); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestAudit(t *testing.T) {
	m := New()
	m.RegisterAudit(func() []audit.Stats {
		return []audit.Stats{
			{Sink: "file", Mode: audit.Enforced, Recorded: 10, Delivered: 8, Spooled: 2, SpoolBytes: 900, OldestUndelivered: 1500 * time.Millisecond},
			{Sink: "hec", Mode: audit.BestEffort, Recorded: 5, Dropped: 1, Retried: 3, LastError: "connection refused"},
		}
	})
	want := `
# HELP jitproxy_audit_delivery_failing 1 when the last delivery to the sink failed, 0 after a success.
# TYPE jitproxy_audit_delivery_failing gauge
jitproxy_audit_delivery_failing{mode="best_effort",sink="hec"} 1
jitproxy_audit_delivery_failing{mode="enforced",sink="file"} 0
# HELP jitproxy_audit_events_dropped_total Audit events a best_effort sink could not spool.
# TYPE jitproxy_audit_events_dropped_total counter
jitproxy_audit_events_dropped_total{mode="best_effort",sink="hec"} 1
jitproxy_audit_events_dropped_total{mode="enforced",sink="file"} 0
# HELP jitproxy_audit_queue_events Audit records spooled and not yet delivered (the queue's depth).
# TYPE jitproxy_audit_queue_events gauge
jitproxy_audit_queue_events{mode="best_effort",sink="hec"} 0
jitproxy_audit_queue_events{mode="enforced",sink="file"} 2
# HELP jitproxy_audit_oldest_undelivered_seconds Age of the oldest record not yet delivered; 0 when none waits.
# TYPE jitproxy_audit_oldest_undelivered_seconds gauge
jitproxy_audit_oldest_undelivered_seconds{mode="best_effort",sink="hec"} 0
jitproxy_audit_oldest_undelivered_seconds{mode="enforced",sink="file"} 1.5
`
	if err := testutil.GatherAndCompare(m.Registry, strings.NewReader(want),
		"jitproxy_audit_delivery_failing", "jitproxy_audit_events_dropped_total", "jitproxy_audit_queue_events", "jitproxy_audit_oldest_undelivered_seconds"); err != nil {
		t.Error(err)
	}
	if problems, err := testutil.GatherAndLint(m.Registry); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %v", problems, err)
	}
}

func TestHandler(t *testing.T) {
	redisErr := errors.New("dial tcp: connection refused")
	tests := []struct {
		name       string
		path       string
		checks     []Check
		wantStatus int
		wantBody   string
	}{
		{name: "livez", path: "/livez", wantStatus: http.StatusOK, wantBody: "ok\n"},
		{name: "ready", path: "/readyz", checks: []Check{{Name: "redis", Check: func(context.Context) error { return nil }}}, wantStatus: http.StatusOK, wantBody: "ok\n"},
		{
			name: "not ready", path: "/readyz",
			checks: []Check{
				{Name: "redis", Check: func(context.Context) error { return redisErr }},
				{Name: "policies", Check: func(context.Context) error { return nil }},
			},
			wantStatus: http.StatusServiceUnavailable, wantBody: "not ready:\nredis: dial tcp: connection refused\n",
		},
		{
			name: "a check that does not answer in time", path: "/readyz",
			checks:     []Check{{Name: "redis", Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}},
			wantStatus: http.StatusServiceUnavailable, wantBody: "not ready:\nredis: context deadline exceeded\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := New().Handler(HandlerConfig{Checks: tt.checks, CheckTimeout: 20 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tt.path, nil))
			body, _ := io.ReadAll(rec.Body)
			if diff := cmp.Diff([]any{tt.wantStatus, tt.wantBody}, []any{rec.Code, string(body)}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestHandlerMetrics(t *testing.T) {
	m := New()
	m.Target("dev", "kubernetes").Request(DecisionDeny)
	rec := httptest.NewRecorder()
	m.Handler(HandlerConfig{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `jitproxy_requests_total{decision="deny",kind="kubernetes",target="dev"} 1`) {
		t.Errorf("status %d, body:\n%s", rec.Code, rec.Body.String())
	}
	if !strings.Contains(rec.Body.String(), "go_goroutines") {
		t.Error("no Go runtime metrics")
	}
}
