package intercept

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/broker"
)

// Protocol is what the pipeline needs to know about one kind of target.
type Protocol interface {
	// Kind is the target kind, for example access.KindKubernetes.
	Kind() string
	// Classify parses a request into an Action: Method, Path and the
	// part of its kind; Kind and Target are filled in by the pipeline.
	// body returns the request's body, read within the pipeline's size and
	// time limits, and puts it back for forwarding; a protocol calls it
	// only when the action cannot be told without the body (an AWS query
	// form). Its error must be returned, wrapped or not: the pipeline
	// answers it. Any other error means the request is malformed or
	// refused; its message is safe to show the agent.
	Classify(r *http.Request, body func() ([]byte, error)) (access.Action, error)
	// DecodeBody returns the request body as policies see it, or nil when
	// policies need no body for this action. raw is the body, already read
	// within the size limit. An error means a body policies need could not
	// be decoded: the request is refused.
	DecodeBody(a access.Action, contentType string, raw []byte) (any, error)
	// NeedsBody reports whether DecodeBody wants the body of a.
	NeedsBody(a access.Action) bool
	// Describe names an action for people, as in "list pods in namespace demo".
	Describe(a access.Action) string
	// OutboundHeader returns the headers of an outbound request that may
	// reach the upstream: an allow-list of what the protocol needs, never a
	// credential. Everything else the agent sent is dropped.
	OutboundHeader(h http.Header) http.Header
	// Authorize applies the minted credential to a request prepared for
	// the upstream, as the last step before it is sent (in the target's
	// RoundTripper, after every header and the URL are final): a bearer
	// token, or a SigV4 signature over the request as sent. a is the
	// request's Action. An error fails the request; its message is safe to
	// show the agent and never holds a secret.
	Authorize(out *http.Request, a access.Action, c broker.Credential) error
	// WriteError answers r with an error in the target's own format, so
	// that its clients show the message (for Kubernetes, a Status object;
	// for AWS, the error document of r's protocol).
	WriteError(w http.ResponseWriter, r *http.Request, status int, message string)
}

// Admitter is implemented by the protocols of targets that store objects.
// Before a write is forwarded, it asks the upstream what the write would
// store, so that policies judge exactly that object (input.object,
// input.old_object), and makes the write conditional on it.
type Admitter interface {
	// NeedsObject reports whether policies must judge the object a stores
	// before it is forwarded. Such a request is never forwarded without it.
	NeedsObject(a access.Action) bool
	// Admit computes the object the write r would store, through send,
	// which sends a request the protocol made to the upstream with the
	// grant's credential. body is r's body, already read. With withOld it
	// also returns the object as stored before. It may replace r's body to
	// make the write conditional on what was judged.
	//
	// A non-nil response is the upstream's own answer to give the agent
	// instead of forwarding r, after policies allowed the Write if it is
	// not zero. An error means the object cannot be known; its message is
	// safe to show the agent.
	Admit(ctx context.Context, send func(*http.Request) (*http.Response, error), r *http.Request, body []byte, a access.Action, withOld bool) (access.Write, *http.Response, error)
}

// SelfReviewer is implemented by the protocols of targets whose clients
// ask what they may do (Kubernetes' SelfSubjectAccessReview and
// SelfSubjectRulesReview, sent by kubectl auth can-i). The pipeline
// answers such a request itself, from the caller's grants and the
// policies, needing no grant, and never forwards it: the upstream would
// answer for jitproxy's minted credential, not for the agent.
type SelfReviewer interface {
	// IsSelfReview reports whether a asks what the caller may do.
	IsSelfReview(a access.Action) bool
	// SelfReview answers the review a, whose body (sent as contentType)
	// is body, on w. can decides an action as if the caller sent it now;
	// rules returns the Kubernetes permissions of the caller's grants in
	// force on the target in a namespace ("" for cluster-wide ones only).
	// An error means nothing was written: a malformed review, whose
	// message is safe to show the agent, or an error of can.
	SelfReview(w http.ResponseWriter, a access.Action, contentType string, body []byte, can func(access.Action) (access.Answer, error), rules func(namespace string) []access.KubernetesPermission) error
}

// UpstreamRewriter is implemented by protocols whose requests name part
// of what they address in the host name (S3's virtual-hosted buckets).
// For a target with a fixed upstream, which serves everything under its
// own host name, RewriteForUpstream moves that part into out's path; host
// is the host:port the agent addressed.
type UpstreamRewriter interface {
	RewriteForUpstream(out *http.Request, host string)
}

// Target is one upstream API jitproxy brokers access to.
type Target struct {
	// Name identifies the target in policies, grants and audit events.
	Name string
	// Hosts are the host names (with optional port, default 443) agents
	// address; the proxy intercepts CONNECTs to these and refuses all
	// others. A label "*" matches any one label (not a dot), so
	// "*.s3.amazonaws.com" matches "bucket.s3.amazonaws.com" and
	// "s3.*.amazonaws.com" matches "s3.eu-west-1.amazonaws.com". A host
	// named exactly wins over a pattern; two targets' patterns must not
	// both match one host.
	Hosts []string
	// Upstream is where requests go, for example https://10.0.0.1:6443.
	// Nil: each request goes to the host the agent addressed (which Hosts
	// matched), as for AWS's own endpoints.
	Upstream *url.URL
	// Transport reaches the upstream with TLS verified (against the
	// target's CA, or the system's roots when Upstream is nil). It should
	// keep as many idle connections per host as requests run at once:
	// with http.Transport's default of 2, 8 concurrent requests open a new
	// connection for about one in four (BenchmarkProxyRequestParallel's
	// upstream-dials/op).
	Transport http.RoundTripper
	Protocol  Protocol
	// Discovery, if set, is the credential for requests policy allows
	// without a grant (permit_discovery): an identity that can read the
	// API's discovery documents and nothing else. Nil: such requests are
	// refused.
	Discovery *CredentialSource
}

// CredentialSource names a credential provider and its options.
type CredentialSource struct {
	Provider string
	Options  map[string]string
}

// discoveryGrantID is the broker's cache key for discovery credentials: no
// grant is behind them.
const discoveryGrantID = "discovery"

// discoveryCredentialTTL is how long a discovery credential is asked for.
const discoveryCredentialTTL = time.Hour

// Validate checks a target's fields.
func (t *Target) validate() error {
	var errs []error
	if t.Name == "" {
		errs = append(errs, errors.New("name is required"))
	}
	if len(t.Hosts) == 0 {
		errs = append(errs, errors.New("at least one host is required"))
	}
	for _, h := range t.Hosts {
		if _, err := newHostPattern(h); err != nil {
			errs = append(errs, fmt.Errorf("host %q: %w", h, err))
		}
	}
	if t.Upstream != nil && (t.Upstream.Scheme != "https" || t.Upstream.Host == "") {
		errs = append(errs, errors.New("upstream must be an https URL"))
	}
	if t.Transport == nil {
		errs = append(errs, errors.New("transport is required"))
	}
	if t.Protocol == nil {
		errs = append(errs, errors.New("protocol is required"))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("target %q: %w", t.Name, err)
	}
	return nil
}

// normalizeHostPort lower-cases a host and adds the default port 443.
func normalizeHostPort(hostport string) (string, error) {
	if hostport == "" {
		return "", errors.New("empty host")
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		// No port: the whole value is the host.
		host, port = strings.Trim(hostport, "[]"), "443"
	}
	if host == "" || strings.ContainsAny(host, "/@?# ") {
		return "", errors.New("not a host name")
	}
	return net.JoinHostPort(strings.ToLower(host), port), nil
}

// targets finds a target by the host:port an agent connects to.
type targets struct {
	byHost   map[string]*Target
	patterns []targetPattern
}

type targetPattern struct {
	pattern hostPattern
	target  *Target
}

func newTargets(list []*Target) (*targets, error) {
	ts := &targets{byHost: map[string]*Target{}}
	names := map[string]bool{}
	var errs []error
	for _, t := range list {
		if err := t.validate(); err != nil {
			errs = append(errs, err)
			continue
		}
		if names[t.Name] {
			errs = append(errs, fmt.Errorf("target %q is defined twice", t.Name))
		}
		names[t.Name] = true
		for _, h := range t.Hosts {
			hp, _ := newHostPattern(h)
			if !hp.wild() {
				if other, dup := ts.byHost[hp.String()]; dup {
					errs = append(errs, fmt.Errorf("host %s belongs to targets %q and %q", hp, other.Name, t.Name))
				}
				ts.byHost[hp.String()] = t
				continue
			}
			for _, other := range ts.patterns {
				if other.target != t && other.pattern.overlaps(hp) {
					errs = append(errs, fmt.Errorf("host patterns %s of target %q and %s of target %q match the same hosts", other.pattern, other.target.Name, hp, t.Name))
				}
			}
			ts.patterns = append(ts.patterns, targetPattern{pattern: hp, target: t})
		}
	}
	return ts, errors.Join(errs...)
}

// lookup returns the target for hostport and the normalized host:port, or
// nil.
func (ts *targets) lookup(hostport string) (*Target, string) {
	hp, err := normalizeHostPort(hostport)
	if err != nil {
		return nil, ""
	}
	if t, ok := ts.byHost[hp]; ok {
		return t, hp
	}
	for _, p := range ts.patterns {
		if p.pattern.matches(hp) {
			return p.target, hp
		}
	}
	return nil, ""
}
