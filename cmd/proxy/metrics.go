package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/jitproxy/jitproxy/internal/broker"
	"github.com/jitproxy/jitproxy/internal/intercept"
	"github.com/jitproxy/jitproxy/internal/metrics"
)

var (
	_ intercept.TargetMetrics = (*metrics.Target)(nil)
	_ broker.Metrics          = metrics.Broker{}
)

// readyTimeout bounds one /readyz, the Redis PING included.
const readyTimeout = time.Second

// targetMetrics returns the proxy's per-target metrics; nil without a
// metrics listener.
func (c *components) targetMetrics() func(target, kind string) intercept.TargetMetrics {
	if c.metrics == nil {
		return nil
	}
	return func(target, kind string) intercept.TargetMetrics { return c.metrics.Target(target, kind) }
}

// brokerMetrics returns the broker's metrics; nil without a metrics listener.
func (c *components) brokerMetrics() broker.Metrics {
	if c.metrics == nil {
		return nil
	}
	return c.metrics.Broker()
}

// registerCollectors adds what is read at scrape time: the grants by
// state, from Redis, and the audit sinks' counters.
func (c *components) registerCollectors() {
	if c.metrics == nil {
		return
	}
	c.metrics.RegisterGrants(func(ctx context.Context) (map[string]int, error) {
		n, err := c.jit.CountLive(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[string]int, len(n))
		for s, v := range n {
			out[string(s)] = v
		}
		return out, nil
	}, 2*time.Second)
	c.metrics.RegisterAudit(c.recorder.Stats)
}

// metricsServer serves /metrics, /livez and /readyz. Ready means Redis
// answers a PING, policies are loaded and every enforced audit sink can
// take events.
func (c *components) metricsServer() *http.Server {
	log := c.log.With("component", "metrics")
	h := c.metrics.Handler(metrics.HandlerConfig{
		Checks: []metrics.Check{
			{Name: "redis", Check: func(ctx context.Context) error { return c.redis.Ping(ctx).Err() }},
			{Name: "policies", Check: func(context.Context) error { return c.live.loaded() }},
			{Name: "audit", Check: func(context.Context) error { return c.recorder.Ready() }},
		},
		CheckTimeout: readyTimeout,
		Logger:       log,
	})
	return &http.Server{
		Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: time.Minute, IdleTimeout: 2 * time.Minute,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves srv on ln until ctx ends, then shuts it down.
func serveHTTP(ctx context.Context, srv *http.Server, ln net.Listener) error {
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	err := srv.Shutdown(sctx)
	if serr := <-done; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	return err
}
