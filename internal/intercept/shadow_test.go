package intercept

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/authz"
)

// recordingMetrics counts what TargetMetrics is told.
type recordingMetrics struct {
	mu     sync.Mutex
	shadow map[string]int
}

func (m *recordingMetrics) Request(string)              {}
func (m *recordingMetrics) Stage(string, time.Duration) {}
func (m *recordingMetrics) Shadow(result string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.shadow[result]++
}

func (m *recordingMetrics) take() map[string]int {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.shadow
	m.shadow = map[string]int{}
	return s
}

// lockedBuffer is a log output safe for the proxy's goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

// failingDecider cannot evaluate.
type failingDecider struct{}

func (failingDecider) Decide(context.Context, authz.Input) (authz.Decision, error) {
	return authz.Decision{}, errors.New("shadow broken")
}
func (failingDecider) UsesOldObject() bool { return false }

// TestShadowPolicies: the shadow set decides every enforced decision too;
// a decision that differs is logged and counted, and the outcome is always
// the enforced set's.
func TestShadowPolicies(t *testing.T) {
	src := &swappedPolicies{}
	m := &recordingMetrics{shadow: map[string]int{}}
	logs := &lockedBuffer{}
	h := newHarness(t, harnessOptions{handler: &fakeKube{}, config: func(c *Config) {
		c.Policies = src
		c.Metrics = func(string, string) TargetMetrics { return m }
		c.Logger = slog.New(slog.NewTextHandler(logs, nil))
	}})
	open := newEngine(t, objectPolicy(false))
	frozen := newEngine(t, withRule(`forbid contains "reads are frozen" if input.action.kubernetes.verb == "get"`))
	h.sessions.setGrants(editorGrant())
	tests := []struct {
		name        string
		enforced    Decider
		shadow      Decider
		wantStatus  int
		wantMetrics map[string]int
		wantLog     []string // "" entries: no differing-decision line
	}{
		{name: "no shadow", enforced: open, wantStatus: http.StatusOK, wantMetrics: map[string]int{}},
		{name: "same", enforced: open, shadow: open, wantStatus: http.StatusOK, wantMetrics: map[string]int{"same": 1}},
		{
			name: "shadow would deny", enforced: open, shadow: frozen, wantStatus: http.StatusOK,
			wantMetrics: map[string]int{"differs": 1},
			wantLog:     []string{`msg="shadow decision differs"`, "request_id=", `action="get deployments.apps \"web\" in namespace \"demo\""`, "enforced_allowed=true", "shadow_allowed=false", "reads are frozen"},
		},
		{
			name: "shadow would allow", enforced: frozen, shadow: open, wantStatus: http.StatusForbidden,
			wantMetrics: map[string]int{"differs": 1},
			wantLog:     []string{`msg="shadow decision differs"`, "enforced_allowed=false", "shadow_allowed=true"},
		},
		{
			name: "shadow fails", enforced: open, shadow: failingDecider{}, wantStatus: http.StatusOK,
			wantMetrics: map[string]int{"error": 1},
			wantLog:     []string{`msg="evaluate the shadow policies"`, "shadow broken"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src.cur.Store(&PolicySet{Decider: tt.enforced, Access: h.sessions, Shadow: tt.shadow})
			m.take()
			logs.take()
			resp, err := h.agent().Get("https://kubernetes.demo/apis/apps/v1/namespaces/demo/deployments/web")
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if diff := cmp.Diff(tt.wantMetrics, m.take()); diff != "" {
				t.Errorf("shadow metrics (-want +got):\n%s", diff)
			}
			log := logs.take()
			if len(tt.wantLog) == 0 && strings.Contains(log, "shadow") {
				t.Errorf("unexpected shadow log:\n%s", log)
			}
			for _, s := range tt.wantLog {
				if !strings.Contains(log, s) {
					t.Errorf("log lacks %q:\n%s", s, log)
				}
			}
			if id := resp.Header.Get(RequestIDHeader); len(tt.wantLog) > 0 && !strings.Contains(log, "request_id="+id) {
				t.Errorf("log lacks request_id=%s:\n%s", id, log)
			}
		})
	}
}
