package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Namespace prefixes every metric name.
const Namespace = "jitproxy"

// Decisions and stages, the values of the decision and stage labels.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
	DecisionError = "error"

	StageClassify   = "classify"
	StageDecide     = "decide"
	StageCredential = "credential"
	StageUpstream   = "upstream"
)

// Shadow results, the values of the result label of shadow decisions.
const (
	ShadowSame    = "same"
	ShadowDiffers = "differs"
	ShadowError   = "error"
)

// Cache results, the values of the result label of credential lookups.
const (
	CacheHit    = "hit"    // in this process
	CacheShared = "shared" // in Redis, minted by this or another replica
	CacheMiss   = "miss"   // minted
)

var (
	decisions     = [...]string{DecisionAllow, DecisionDeny, DecisionError}
	shadowResults = [...]string{ShadowSame, ShadowDiffers, ShadowError}
	stages        = [...]string{StageClassify, StageDecide, StageCredential, StageUpstream}
)

// stageBuckets span the local stages (tens of microseconds) to the
// upstream's answer (seconds).
var stageBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Metrics holds the registry and the metrics recorded on the request
// path. It is safe for concurrent use.
type Metrics struct {
	// Registry is where every jitproxy metric is registered, the Go
	// runtime's and the process's included.
	Registry *prometheus.Registry

	requests *prometheus.CounterVec
	stages   *prometheus.HistogramVec
	mints    *prometheus.CounterVec
	mintErrs *prometheus.CounterVec
	shadow   *prometheus.CounterVec
	lookups  [3]prometheus.Counter // hit, shared, miss
}

// New returns Metrics with a new registry that also holds the Go runtime
// and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total",
		Help: "Requests through the proxy's tunnels by target, kind and decision (allow: policy allowed; deny: policy denied or the request was refused; error: jitproxy could not decide or serve it, a 5xx of its own).",
	}, []string{"target", "kind", "decision"})
	m.stages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "request_stage_duration_seconds",
		Help:    "Time spent in each stage of a request: classify (read what it asks), decide (policy evaluation), credential (from the cache or minted), upstream (until the target's response headers).",
		Buckets: stageBuckets,
	}, []string{"target", "kind", "stage"})
	m.mints = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "credential_mints_total",
		Help: "Credential mints attempted, by provider; the failed ones are counted in credential_mint_errors_total too.",
	}, []string{"provider"})
	m.mintErrs = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "credential_mint_errors_total",
		Help: "Mints a provider failed, by provider.",
	}, []string{"provider"})
	m.shadow = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "shadow_decisions_total",
		Help: "Enforced decisions the shadow policies (policies.shadow_authz_dir) decided too, by target, kind and result: same, differs (another verdict, permitting grants or reasons), error (the shadow policies could not be evaluated).",
	}, []string{"target", "kind", "result"})
	lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "credential_cache_lookups_total",
		Help: "Credentials asked of the broker, by where they came from: hit (this process), shared (Redis), miss (minted).",
	}, []string{"result"})
	for i, r := range [...]string{CacheHit, CacheShared, CacheMiss} {
		m.lookups[i] = lookups.WithLabelValues(r)
	}
	m.Registry.MustRegister(m.requests, m.stages, m.mints, m.mintErrs, m.shadow, lookups,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Target is the request metrics of one target, resolved once so that
// recording a request allocates nothing and looks nothing up. It is safe
// for concurrent use.
type Target struct {
	requests [len(decisions)]prometheus.Counter
	stages   [len(stages)]prometheus.Observer
	shadow   [len(shadowResults)]prometheus.Counter
}

// Target returns the request metrics of the target name of kind
// (kubernetes, aws). Every series of the target is created at once, at
// zero, so that rates are defined from the start.
func (m *Metrics) Target(name, kind string) *Target {
	t := &Target{}
	for i, d := range decisions {
		t.requests[i] = m.requests.WithLabelValues(name, kind, d)
	}
	for i, s := range stages {
		t.stages[i] = m.stages.WithLabelValues(name, kind, s)
	}
	for i, r := range shadowResults {
		t.shadow[i] = m.shadow.WithLabelValues(name, kind, r)
	}
	return t
}

// Request counts a request with its decision (DecisionAllow, DecisionDeny
// or DecisionError); another value counts as an error.
func (t *Target) Request(decision string) {
	i := 2
	switch decision {
	case DecisionAllow:
		i = 0
	case DecisionDeny:
		i = 1
	}
	t.requests[i].Inc()
}

// Stage observes the time a request spent in stage (StageClassify,
// StageDecide, StageCredential or StageUpstream); another stage is
// ignored.
func (t *Target) Stage(stage string, d time.Duration) {
	i := -1
	switch stage {
	case StageClassify:
		i = 0
	case StageDecide:
		i = 1
	case StageCredential:
		i = 2
	case StageUpstream:
		i = 3
	}
	if i >= 0 {
		t.stages[i].Observe(d.Seconds())
	}
}

// Broker is the credential broker's metrics. It is safe for concurrent use.
type Broker struct{ m *Metrics }

// Broker returns the credential broker's metrics.
func (m *Metrics) Broker() Broker { return Broker{m} }

// Lookup counts a credential asked of the broker by where it came from:
// CacheHit, CacheShared or CacheMiss; another value is ignored.
func (b Broker) Lookup(result string) {
	switch result {
	case CacheHit:
		b.m.lookups[0].Inc()
	case CacheShared:
		b.m.lookups[1].Inc()
	case CacheMiss:
		b.m.lookups[2].Inc()
	}
}

// Mint counts a mint by provider, and its failure if err is not nil.
// provider must be a configured provider's name.
func (b Broker) Mint(provider string, err error) {
	b.m.mints.WithLabelValues(provider).Inc()
	if err != nil {
		b.m.mintErrs.WithLabelValues(provider).Inc()
	}
}

// Shadow counts an enforced decision the shadow policies decided too,
// with how they compared (ShadowSame, ShadowDiffers or ShadowError);
// another value counts as an error.
func (t *Target) Shadow(result string) {
	i := 2
	switch result {
	case ShadowSame:
		i = 0
	case ShadowDiffers:
		i = 1
	}
	t.shadow[i].Inc()
}
