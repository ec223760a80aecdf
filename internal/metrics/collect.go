package metrics

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// CountGrants returns the number of live grants by state (PENDING,
// ACTIVE), read from the shared store at scrape time, so that every
// replica reports the same numbers.
type CountGrants func(ctx context.Context) (map[string]int, error)

// grantStates are reported even at zero.
var grantStates = []string{"PENDING", "ACTIVE"}

// grantsCollector reads the grants by state at each scrape, within a
// timeout; a failure (Redis down) reports no grant gauges and counts an
// error.
type grantsCollector struct {
	count   CountGrants
	timeout time.Duration
	grants  *prometheus.Desc
	errs    prometheus.Counter
}

// RegisterGrants adds the gauge of live grants by state, read with count
// within timeout (default 2s) at each scrape. count must be safe for
// concurrent use.
func (m *Metrics) RegisterGrants(count CountGrants, timeout time.Duration) {
	if timeout <= 0 {
		timeout = 2 * time.Second
	}
	c := &grantsCollector{
		count: count, timeout: timeout,
		grants: prometheus.NewDesc(Namespace+"_grants", "Live grants by state, read from the shared store at scrape time; absent when the store cannot be read.", []string{"state"}, nil),
		errs: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: Namespace, Name: "grants_collect_errors_total",
			Help: "Scrapes that could not read the grants from the shared store.",
		}),
	}
	m.Registry.MustRegister(c)
}

func (c *grantsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.grants
	c.errs.Describe(ch)
}

func (c *grantsCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	n, err := c.count(ctx)
	if err != nil {
		c.errs.Inc()
	} else {
		seen := map[string]bool{}
		for _, s := range grantStates {
			seen[s] = true
			ch <- prometheus.MustNewConstMetric(c.grants, prometheus.GaugeValue, float64(n[s]), s)
		}
		for s, v := range n {
			if !seen[s] {
				ch <- prometheus.MustNewConstMetric(c.grants, prometheus.GaugeValue, float64(v), s)
			}
		}
	}
	ch <- c.errs
}

// auditCollector reports the audit recorder's per-sink counters.
type auditCollector struct {
	stats func() []audit.Stats
	descs auditDescs
}

type auditDescs struct {
	recorded, dropped, refused, delivered, retried, spooled, spoolBytes, oldest, failing *prometheus.Desc
}

// RegisterAudit adds the audit sinks' counters, read with stats (the
// Recorder's Stats) at each scrape.
func (m *Metrics) RegisterAudit(stats func() []audit.Stats) {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc(Namespace+"_audit_"+name, help, []string{"sink", "mode"}, nil)
	}
	m.Registry.MustRegister(&auditCollector{stats: stats, descs: auditDescs{
		recorded:   d("events_recorded_total", "Audit events spooled for the sink."),
		dropped:    d("events_dropped_total", "Audit events a best_effort sink could not spool."),
		refused:    d("events_refused_total", "Audit events an enforced sink could not spool; their requests were refused."),
		delivered:  d("events_delivered_total", "Audit records the sink acknowledged."),
		retried:    d("delivery_retries_total", "Failed deliveries of a batch to the sink."),
		spooled:    d("queue_events", "Audit records spooled and not yet delivered (the queue's depth)."),
		spoolBytes: d("spool_bytes", "The size of the sink's spool on disk."),
		oldest:     d("oldest_undelivered_seconds", "Age of the oldest record not yet delivered; 0 when none waits."),
		failing:    d("delivery_failing", "1 when the last delivery to the sink failed, 0 after a success."),
	}})
}

func (c *auditCollector) Describe(ch chan<- *prometheus.Desc) {
	d := c.descs
	for _, x := range []*prometheus.Desc{d.recorded, d.dropped, d.refused, d.delivered, d.retried, d.spooled, d.spoolBytes, d.oldest, d.failing} {
		ch <- x
	}
}

func (c *auditCollector) Collect(ch chan<- prometheus.Metric) {
	d := c.descs
	for _, s := range c.stats() {
		mode := string(s.Mode)
		send := func(desc *prometheus.Desc, t prometheus.ValueType, v float64) {
			ch <- prometheus.MustNewConstMetric(desc, t, v, s.Sink, mode)
		}
		send(d.recorded, prometheus.CounterValue, float64(s.Recorded))
		send(d.dropped, prometheus.CounterValue, float64(s.Dropped))
		send(d.refused, prometheus.CounterValue, float64(s.Refused))
		send(d.delivered, prometheus.CounterValue, float64(s.Delivered))
		send(d.retried, prometheus.CounterValue, float64(s.Retried))
		send(d.spooled, prometheus.GaugeValue, float64(s.Spooled))
		send(d.spoolBytes, prometheus.GaugeValue, float64(s.SpoolBytes))
		send(d.oldest, prometheus.GaugeValue, s.OldestUndelivered.Seconds())
		failing := 0.0
		if s.LastError != "" {
			failing = 1
		}
		send(d.failing, prometheus.GaugeValue, failing)
	}
}
