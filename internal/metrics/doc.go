// Package metrics keeps jitproxy's Prometheus metrics in a registry of its
// own (never the global one) and serves them, with the liveness and
// readiness probes, on the metrics listener.
//
// The packages that record (intercept, broker) declare small interfaces
// for what they count; the types here satisfy them, so that those packages
// do not depend on client_golang. What is read rather than counted (grants
// by state, the audit sinks' counters) is collected at scrape time from
// functions cmd/proxy hands over.
//
// Labels are bounded: target names and provider names come from the
// configuration, kinds and decisions from fixed sets. No label carries a
// user, session, path or resource name.
package metrics
