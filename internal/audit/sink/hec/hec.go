package hec

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/sink"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// DefaultSourcetype is the sourcetype of the events when none is
// configured.
const DefaultSourcetype = "jitproxy:audit"

// Config configures a Sink.
type Config struct {
	// URL is the HEC's base URL, scheme, host and port (and a path prefix
	// if a proxy adds one), such as https://splunk.example.com:8088; the
	// sink appends /services/collector/event and /services/collector/ack.
	// Required.
	URL string
	// TokenFile holds the HEC token. Required.
	TokenFile string
	// Channel is the X-Splunk-Request-Channel, a GUID. Empty: a random one
	// made by New, fixed for the Sink's life.
	Channel string
	// DisableAck turns indexer acknowledgement off (configuration "ack:
	// false"): a 200 answer then counts as delivery. By default the sink
	// waits for every event to be indexed.
	DisableAck bool
	// Host is the events' host; default the machine's host name.
	Host string
	// Source is the events' source; default "jitproxy".
	Source string
	// Sourcetype is the events' sourcetype; default DefaultSourcetype.
	Sourcetype string
	// Index is the events' index; empty leaves it to the token's default.
	Index string
	// CAFile, if set, holds the PEM certificates that verify Splunk's
	// certificate, in place of the system roots.
	CAFile string
	// Timeout bounds each HTTP request; default 10s.
	Timeout time.Duration
	// AckTimeout bounds the wait for indexer acknowledgement of a batch,
	// from when its last request was accepted; default 1m.
	AckTimeout time.Duration
	// MaxRequestBytes is the most one request carries (several events go in
	// one request up to it); default 1,000,000, below Splunk's
	// max_content_length. An event larger than this goes alone.
	MaxRequestBytes int
}

// Sink delivers batches to a Splunk HEC. It is safe for concurrent use.
type Sink struct {
	eventURL, ackURL string
	base             string // for errors
	tokenFile        string
	channel          string
	ack              bool
	header           []byte // the envelope's members before "event"
	timeout          time.Duration
	ackTimeout       time.Duration
	maxRequest       int
	client           *http.Client
}

var _ audit.Sink = (*Sink)(nil)

var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// New checks cfg and returns a Sink. It reads CAFile, and TokenFile once
// to check it, but sends nothing.
func New(cfg Config) (*Sink, error) {
	var errs []error
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		errs = append(errs, errors.New("url is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("url: %w", err))
	case u.Scheme != "http" && u.Scheme != "https":
		errs = append(errs, fmt.Errorf("url %s: the scheme must be http or https", cfg.URL))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("url %s: no host", cfg.URL))
	case u.User != nil || u.RawQuery != "" || u.Fragment != "":
		errs = append(errs, errors.New("url: give only scheme, host, port and path; the token comes from token_file"))
	case strings.Contains(u.Path, "/services/collector"):
		errs = append(errs, fmt.Errorf("url %s: give the HEC's base URL (such as https://splunk.example.com:8088), not an endpoint", cfg.URL))
	}
	if cfg.TokenFile == "" {
		errs = append(errs, errors.New("token_file is required"))
	} else if _, err := sink.ReadToken(cfg.TokenFile); err != nil {
		errs = append(errs, err)
	}
	if cfg.Channel != "" && !guid.MatchString(cfg.Channel) {
		errs = append(errs, fmt.Errorf("channel %q: Splunk wants a GUID, such as 0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0", cfg.Channel))
	}
	tlsConfig, err := sink.TLSConfig(cfg.CAFile)
	if err != nil {
		errs = append(errs, err)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"timeout", cfg.Timeout}, {"ack_timeout", cfg.AckTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("%s %s: must not be negative", d.name, d.v))
		}
	}
	if cfg.MaxRequestBytes < 0 {
		errs = append(errs, fmt.Errorf("max_request_bytes %d: must not be negative", cfg.MaxRequestBytes))
	}
	if cfg.Host == "" {
		h, err := os.Hostname()
		if err != nil {
			errs = append(errs, fmt.Errorf("host: not set, and %w", err))
		}
		cfg.Host = h
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("hec sink: %w", err)
	}
	if cfg.Channel == "" {
		cfg.Channel = newGUID()
	}
	if cfg.Source == "" {
		cfg.Source = "jitproxy"
	}
	if cfg.Sourcetype == "" {
		cfg.Sourcetype = DefaultSourcetype
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.AckTimeout == 0 {
		cfg.AckTimeout = time.Minute
	}
	if cfg.MaxRequestBytes == 0 {
		cfg.MaxRequestBytes = 1_000_000
	}
	base := strings.TrimSuffix(u.String(), "/")
	return &Sink{
		eventURL:   base + "/services/collector/event",
		ackURL:     base + "/services/collector/ack",
		base:       base,
		tokenFile:  cfg.TokenFile,
		channel:    cfg.Channel,
		ack:        !cfg.DisableAck,
		header:     envelopeHeader(cfg),
		timeout:    cfg.Timeout,
		ackTimeout: cfg.AckTimeout,
		maxRequest: cfg.MaxRequestBytes,
		client:     newClient(tlsConfig),
	}, nil
}

// newGUID returns a random (version 4) UUID.
func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// Channel returns the X-Splunk-Request-Channel the Sink sends.
func (s *Sink) Channel() string { return s.channel }

// envelopeHeader returns the members every event object starts with, after
// "time": host, source, sourcetype and index.
func envelopeHeader(cfg Config) []byte {
	var b bytes.Buffer
	for _, m := range []struct{ k, v string }{
		{"host", cfg.Host}, {"source", cfg.Source}, {"sourcetype", cfg.Sourcetype}, {"index", cfg.Index},
	} {
		if m.v == "" {
			continue
		}
		k, _ := json.Marshal(m.k)
		v, _ := json.Marshal(m.v)
		b.WriteByte(',')
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	return b.Bytes()
}

// appendEvent appends r's HEC event object to b.
func (s *Sink) appendEvent(b []byte, r audit.Record) ([]byte, error) {
	data := bytes.TrimSpace(r.Data)
	if len(data) == 0 || data[0] != '{' || !json.Valid(data) {
		return b, fmt.Errorf("record %s is not a JSON object", r.ID)
	}
	b = append(b, '{')
	if !r.Time.IsZero() {
		us := r.Time.UnixMicro()
		b = fmt.Appendf(b, `"time":%d.%06d`, us/1e6, us%1e6)
		b = append(b, s.header...)
	} else {
		// Without "time", Splunk stamps the event with its arrival. The
		// header is never empty: source and sourcetype have defaults.
		b = append(b, s.header[1:]...)
	}
	b = append(b, `,"event":`...)
	b = append(b, data...)
	b = append(b, '}')
	return b, nil
}

// Deliver sends batch and returns nil once Splunk holds every record:
// indexed, by indexer acknowledgement, or with acknowledgement disabled,
// accepted by HEC with a 200. It returns an error (an *Error for an answer
// from HEC) if a request fails, if the acknowledgement does not come
// within AckTimeout, or when ctx ends; the batch is then to be delivered
// again, and Splunk may hold some of its records twice. An answer of 401
// or 403 makes it read the token file again and, if the token changed,
// send once more. An empty batch sends nothing and returns nil.
func (s *Sink) Deliver(ctx context.Context, batch []audit.Record) error {
	if len(batch) == 0 {
		return nil
	}
	err := s.deliver(ctx, batch)
	if err != nil {
		return fmt.Errorf("hec: deliver %d records (seq %d-%d) to %s: %w", len(batch), batch[0].Seq, batch[len(batch)-1].Seq, s.base, err)
	}
	return nil
}

func (s *Sink) deliver(ctx context.Context, batch []audit.Record) error {
	var bodies [][]byte
	var body []byte
	for _, r := range batch {
		start := len(body)
		var err error
		if body, err = s.appendEvent(body, r); err != nil {
			return err
		}
		if len(body) > s.maxRequest && start > 0 {
			bodies = append(bodies, body[:start:start])
			body = append([]byte(nil), body[start:]...)
		}
	}
	bodies = append(bodies, body)

	tok, err := sink.ReadToken(s.tokenFile)
	if err != nil {
		return err
	}
	var acks []int
	for i, b := range bodies {
		var ackID *int
		if ackID, tok, err = s.send(ctx, b, tok); err != nil {
			if len(bodies) > 1 {
				return fmt.Errorf("request %d of %d: %w", i+1, len(bodies), err)
			}
			return err
		}
		if s.ack {
			if ackID == nil {
				return errors.New("HEC accepted the events but answered without an ackId: indexer acknowledgement is off for this token; " +
					"turn it on for the token (useACK), or set ack: false to count HEC's 200 as delivery (the batch will be sent again)")
			}
			acks = append(acks, *ackID)
		}
	}
	if !s.ack {
		return nil
	}
	return s.waitAcks(ctx, acks, tok)
}

// send POSTs one request's events and returns the ackId of the answer, if
// any, and the token it used (read again after a 401 or 403).
func (s *Sink) send(ctx context.Context, body []byte, tok secret.Value) (*int, secret.Value, error) {
	var answer struct {
		AckID *int `json:"ackId"`
	}
	err := s.post(ctx, s.eventURL, body, tok, &answer)
	var he *Error
	if errors.As(err, &he) && (he.StatusCode == http.StatusUnauthorized || he.StatusCode == http.StatusForbidden) {
		// The token may have been rotated since it was read.
		fresh, rerr := sink.ReadToken(s.tokenFile)
		if rerr != nil {
			return nil, tok, fmt.Errorf("%w (and then %w)", err, rerr)
		}
		if !fresh.Equal(tok) {
			tok = fresh
			err = s.post(ctx, s.eventURL, body, tok, &answer)
		}
	}
	if err != nil {
		return nil, tok, err
	}
	return answer.AckID, tok, nil
}

// Close releases idle connections. The Sink must not be used after.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}
