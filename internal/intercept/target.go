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
	// Classify parses a request into an Action. Kind and Target are filled
	// in by the pipeline. An error means the request is malformed or
	// refused; its message is safe to show the agent.
	Classify(r *http.Request) (access.Action, error)
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
	// Authorize adds the minted credential to the outbound request.
	Authorize(out *http.Request, c broker.Credential)
	// WriteError writes an error in the target's own format, so that its
	// clients show the message (for Kubernetes, a Status object).
	WriteError(w http.ResponseWriter, status int, message string)
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

// Target is one upstream API jitproxy brokers access to.
type Target struct {
	// Name identifies the target in policies, grants and audit events.
	Name string
	// Hosts are the host names (with optional port, default 443) agents
	// address; the proxy intercepts CONNECTs to exactly these.
	Hosts []string
	// Upstream is where requests go, for example https://10.0.0.1:6443.
	Upstream *url.URL
	// Transport reaches Upstream with TLS verified against the target's CA.
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
		if _, err := normalizeHostPort(h); err != nil {
			errs = append(errs, fmt.Errorf("host %q: %w", h, err))
		}
	}
	if t.Upstream == nil || t.Upstream.Scheme != "https" || t.Upstream.Host == "" {
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
	byHost map[string]*Target
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
			hp, _ := normalizeHostPort(h)
			if other, dup := ts.byHost[hp]; dup {
				errs = append(errs, fmt.Errorf("host %s belongs to targets %q and %q", hp, other.Name, t.Name))
			}
			ts.byHost[hp] = t
		}
	}
	return ts, errors.Join(errs...)
}

// lookup returns the target for hostport, or nil.
func (ts *targets) lookup(hostport string) (*Target, string) {
	hp, err := normalizeHostPort(hostport)
	if err != nil {
		return nil, ""
	}
	return ts.byHost[hp], hp
}
