package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is one condition of readiness: nil when it holds. It must return
// by ctx's deadline and be safe for concurrent use.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// HandlerConfig configures Handler.
type HandlerConfig struct {
	// Checks must all pass for /readyz to answer 200. None: always ready.
	Checks []Check
	// CheckTimeout bounds all the checks of one /readyz; default 2s.
	CheckTimeout time.Duration
	// Logger receives the checks that fail, when readiness changes.
	Logger *slog.Logger
}

// Handler serves /metrics (the registry, in the Prometheus text or
// OpenMetrics format), /livez (200 while the process serves) and /readyz
// (200 when every check passes within the timeout, otherwise 503 with the
// failed checks, one a line).
func (m *Metrics) Handler(cfg HandlerConfig) http.Handler {
	if cfg.CheckTimeout <= 0 {
		cfg.CheckTimeout = 2 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{
		Registry: m.Registry, ErrorLog: slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn),
	}))
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("ok\n")) })
	r := &readiness{cfg: cfg}
	mux.HandleFunc("GET /readyz", r.serve)
	return mux
}

type readiness struct {
	cfg HandlerConfig

	mu      sync.Mutex
	lastBad string // the failures last reported, "" when ready
}

func (r *readiness) serve(w http.ResponseWriter, req *http.Request) {
	ctx, cancel := context.WithTimeout(req.Context(), r.cfg.CheckTimeout)
	defer cancel()
	errs := make([]error, len(r.cfg.Checks))
	var wg sync.WaitGroup
	for i, c := range r.cfg.Checks {
		wg.Go(func() {
			if err := c.Check(ctx); err != nil {
				errs[i] = fmt.Errorf("%s: %w", c.Name, err)
			}
		})
	}
	wg.Wait()
	var lines []string
	for _, err := range errs {
		if err != nil {
			lines = append(lines, err.Error())
		}
	}
	bad := strings.Join(lines, "\n")
	r.mu.Lock()
	changed := bad != r.lastBad
	r.lastBad = bad
	r.mu.Unlock()
	if changed {
		if bad == "" {
			r.cfg.Logger.Info("ready")
		} else {
			r.cfg.Logger.Warn("not ready", "err", errors.Join(errs...))
		}
	}
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if bad != "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready:\n%s\n", bad)
		return
	}
	w.Write([]byte("ok\n"))
}
