package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
	"go.opentelemetry.io/otel/trace"
)

// TracingConfig turns on OpenTelemetry traces: a span for each call of
// the admin API and each request jitproxy forwards to a target, exported
// over OTLP/HTTP. Off by default. No trace context is sent to targets or
// read from callers: jitproxy starts its own traces, and the headers that
// reach an upstream stay those of its allow-list.
type TracingConfig struct {
	Enabled bool `yaml:"enabled"`
	// Endpoint is the OTLP/HTTP collector's base URL, such as
	// http://otel-collector:4318 (traces go to ENDPOINT/v1/traces).
	// Required when enabled.
	Endpoint string `yaml:"endpoint"`
	// SampleRatio is the share of traces kept, 0 to 1; default 1.
	SampleRatio *float64 `yaml:"sample_ratio"`
}

func (t TracingConfig) validate() error {
	if !t.Enabled {
		return nil
	}
	u, err := url.Parse(t.Endpoint)
	switch {
	case t.Endpoint == "" || err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") || u.User != nil:
		return fmt.Errorf("tracing.endpoint %q: want the OTLP/HTTP collector's URL, such as http://otel-collector:4318", t.Endpoint)
	case t.SampleRatio != nil && (*t.SampleRatio < 0 || *t.SampleRatio > 1):
		return fmt.Errorf("tracing.sample_ratio %v: want 0 to 1", *t.SampleRatio)
	}
	return nil
}

// tracer is the tracing of a running jitproxy; nil when off.
type tracer struct {
	provider *sdktrace.TracerProvider
}

// newTracer starts exporting to cfg's collector; nil when tracing is off.
// Spans go out in batches, at least every second: a collector that is
// down loses spans, never requests.
func newTracer(cfg TracingConfig) *tracer {
	if !cfg.Enabled {
		return nil
	}
	exp := &otlpExporter{
		url: strings.TrimSuffix(cfg.Endpoint, "/") + "/v1/traces",
		// Its own client: never the proxy environment, and bounded.
		client: &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second},
	}
	ratio := 1.0
	if cfg.SampleRatio != nil {
		ratio = *cfg.SampleRatio
	}
	res := resource.NewSchemaless(semconv.ServiceName("jitproxy"), semconv.ServiceVersion(version))
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(withoutQueries{exp}, sdktrace.WithBatchTimeout(time.Second)),
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(ratio))),
	)
	return &tracer{provider: tp}
}

// withoutQueries exports spans with the query cut off their url.full:
// a query may carry what must not leave jitproxy (a presigned URL's
// signature, an OAuth code). otelhttp sets url.full after the span
// starts, so it is cut on the way out.
type withoutQueries struct{ sdktrace.SpanExporter }

func (e withoutQueries) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	out := make([]sdktrace.ReadOnlySpan, len(spans))
	for i, s := range spans {
		out[i] = s
		attrs := s.Attributes()
		j := slices.IndexFunc(attrs, func(kv attribute.KeyValue) bool { return kv.Key == semconv.URLFullKey })
		if j < 0 {
			continue
		}
		attrs = slices.Clone(attrs)
		u, err := url.Parse(attrs[j].Value.AsString())
		if err != nil {
			attrs[j] = semconv.URLFull("")
		} else {
			u.RawQuery, u.ForceQuery, u.Fragment, u.User = "", false, "", nil
			attrs[j] = semconv.URLFull(u.String())
		}
		out[i] = redacted{s, attrs}
	}
	return e.SpanExporter.ExportSpans(ctx, out)
}

// redacted is a span with other attributes.
type redacted struct {
	sdktrace.ReadOnlySpan
	attrs []attribute.KeyValue
}

func (r redacted) Attributes() []attribute.KeyValue { return r.attrs }

// noPropagation neither injects nor extracts trace context.
var noPropagation = propagation.NewCompositeTextMapPropagator()

// transport wraps a target's transport so that each forwarded request is
// a client span (method, status, duration; the URL without its query).
func (t *tracer) transport(target string, rt http.RoundTripper) http.RoundTripper {
	if t == nil {
		return rt
	}
	return otelhttp.NewTransport(rt,
		otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(noPropagation),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "forward " + target + " " + r.Method }),
		otelhttp.WithSpanOptions(trace.WithAttributes(semconv.PeerService(target))),
	)
}

// handler wraps the admin listener's handler: a server span per call,
// named by its route.
func (t *tracer) handler(h http.Handler) http.Handler {
	if t == nil {
		return h
	}
	return otelhttp.NewHandler(h, "admin",
		otelhttp.WithTracerProvider(t.provider), otelhttp.WithPropagators(noPropagation),
		otelhttp.WithSpanNameFormatter(func(_ string, r *http.Request) string { return "admin " + r.Method + " " + r.URL.Path }),
	)
}

// shutdown flushes the spans not yet exported, within ctx.
func (t *tracer) shutdown(ctx context.Context) error {
	if t == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
