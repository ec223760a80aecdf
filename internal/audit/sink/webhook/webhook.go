// Package webhook is the audit sink that POSTs each batch of records to
// an HTTP endpoint as JSON lines.
//
// One Deliver is one POST: the body is the batch's records, each record's
// JSON followed by a newline (Content-Type application/x-ndjson), in
// stream order. A batch is delivered when the endpoint answers 2xx;
// anything else is an error, and the spooler sends the whole batch again
// later, so the endpoint may see a record twice and must drop duplicates
// by the record's "id".
//
// The sink goes only where it is configured to go: it never uses the
// environment's proxy (HTTPS_PROXY and the like), and it follows a
// redirect only to the same scheme, host and port, and only one that
// keeps the method and body (307, 308); a redirect elsewhere is an error.
// The bearer token, if any, is read from its file at every delivery (and
// again when the endpoint answers 401), so a rotated token is used
// without a restart; it appears in no error and no log.
package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/sink"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// Config configures a Sink.
type Config struct {
	// URL is the endpoint, http or https. Required.
	URL string
	// TokenFile, if set, holds a bearer token sent as "Authorization:
	// Bearer TOKEN". Leading and trailing white space is ignored.
	TokenFile string
	// CAFile, if set, holds the PEM certificates that verify the
	// endpoint's certificate, in place of the system roots.
	CAFile string
	// Timeout bounds each POST, from dialling to the end of the response;
	// default 10s. Deliver's context may end it sooner.
	Timeout time.Duration
	// SecretFile, if set, holds the key every POST is signed with (see
	// Verify), re-read at each delivery.
	SecretFile string
	// Payload is "ndjson" (the default: a batch of records, one per line)
	// or "slack" (each record POSTed alone as a Slack message; native
	// records only).
	Payload string
	// ApprovalURL, for Payload "slack", is the approval page's address
	// with "{grant}" where a grant's ID goes: grant requests get a button
	// to it.
	ApprovalURL string
}

// Sink delivers batches to a webhook. It is safe for concurrent use.
type Sink struct {
	url         *url.URL
	tokenFile   string
	secretFile  string
	slack       bool
	approvalURL string
	timeout     time.Duration
	client      *http.Client
	now         func() time.Time
}

var _ audit.Sink = (*Sink)(nil)

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
		errs = append(errs, fmt.Errorf("url %s: the scheme must be http or https", redactURL(u)))
	case u.Host == "":
		errs = append(errs, fmt.Errorf("url %s: no host", redactURL(u)))
	case u.User != nil:
		errs = append(errs, errors.New("url: credentials in the URL are not allowed: use token_file"))
	}
	if cfg.TokenFile != "" {
		if _, err := sink.ReadToken(cfg.TokenFile); err != nil {
			errs = append(errs, err)
		}
	}
	if cfg.SecretFile != "" {
		if key, err := sink.ReadToken(cfg.SecretFile); err != nil {
			errs = append(errs, fmt.Errorf("secret_file: %w", err))
		} else if len(key.Reveal()) < 16 {
			errs = append(errs, errors.New("secret_file: the key must be at least 16 bytes"))
		}
	}
	switch cfg.Payload {
	case "", "ndjson", "slack":
	default:
		errs = append(errs, fmt.Errorf("payload %q: want ndjson or slack", cfg.Payload))
	}
	if cfg.ApprovalURL != "" {
		if au, err := url.Parse(cfg.ApprovalURL); err != nil || (au.Scheme != "http" && au.Scheme != "https") {
			errs = append(errs, errors.New("approval_url: want an http or https URL"))
		}
	}
	tlsConfig, err := sink.TLSConfig(cfg.CAFile)
	if err != nil {
		errs = append(errs, err)
	}
	if cfg.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %s: must not be negative", cfg.Timeout))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("webhook sink: %w", err)
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	return &Sink{
		url:         u,
		tokenFile:   cfg.TokenFile,
		secretFile:  cfg.SecretFile,
		slack:       cfg.Payload == "slack",
		approvalURL: cfg.ApprovalURL,
		timeout:     cfg.Timeout,
		client:      sink.NewHTTPClient(tlsConfig),
		now:         time.Now,
	}, nil
}

// Deliver POSTs batch as JSON lines and returns nil when the endpoint
// answers 2xx: the endpoint has accepted every record of the batch (how
// durably is the endpoint's business; a 2xx should mean stored). An
// answer of 401 makes it read the token file again and, if the token
// changed, POST once more. Any other answer, a transport error, ctx's end
// or the timeout is an error (a *StatusError for an HTTP status), and the
// batch is to be delivered again: the endpoint may then receive a record
// twice. An empty batch sends nothing and returns nil.
//
// With Payload "slack" each record is one POST, in order; the first that
// fails ends the delivery with its error, and the whole batch is
// delivered again (configure batch size 1 for notifications). With a
// secret file every POST is signed.
func (s *Sink) Deliver(ctx context.Context, batch []audit.Record) error {
	if len(batch) == 0 {
		return nil
	}
	var key secret.Value
	if s.secretFile != "" {
		var err error
		if key, err = sink.ReadToken(s.secretFile); err != nil {
			return fmt.Errorf("webhook: secret_file: %w", err)
		}
	}
	if s.slack {
		for i, r := range batch {
			body, err := slackMessage(r, s.approvalURL)
			if err != nil {
				return fmt.Errorf("webhook: %w", err)
			}
			if err := s.deliver(ctx, body, "application/json", key, batch[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	var body bytes.Buffer
	for _, r := range batch {
		if bytes.IndexByte(r.Data, '\n') >= 0 {
			return fmt.Errorf("webhook: record %s contains a newline, which would split its JSON line", r.ID)
		}
		body.Write(r.Data)
		body.WriteByte('\n')
	}
	return s.deliver(ctx, body.Bytes(), "application/x-ndjson", key, batch)
}

// deliver POSTs body, made of batch, with the bearer token (read again
// and used once more on a 401, if it changed) and signed with key.
func (s *Sink) deliver(ctx context.Context, body []byte, contentType string, key secret.Value, batch []audit.Record) error {
	var tok secret.Value
	if s.tokenFile != "" {
		var err error
		if tok, err = sink.ReadToken(s.tokenFile); err != nil {
			return fmt.Errorf("webhook: %w", err)
		}
	}
	err := s.post(ctx, body, contentType, tok, key)
	var se *StatusError
	if errors.As(err, &se) && se.StatusCode == http.StatusUnauthorized && s.tokenFile != "" {
		// The token may have been rotated since it was read.
		fresh, rerr := sink.ReadToken(s.tokenFile)
		if rerr != nil {
			return fmt.Errorf("webhook: %w (and then %w)", err, rerr)
		}
		if !fresh.Equal(tok) {
			err = s.post(ctx, body, contentType, fresh, key)
		}
	}
	if err != nil {
		return fmt.Errorf("webhook: deliver %d records (seq %d-%d) to %s: %w", len(batch), batch[0].Seq, batch[len(batch)-1].Seq, redactURL(s.url), err)
	}
	return nil
}

func (s *Sink) post(ctx context.Context, body []byte, contentType string, tok, key secret.Value) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, s.url.String(), bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("User-Agent", "jitproxy-audit")
	if !tok.IsZero() {
		req.Header.Set("Authorization", "Bearer "+tok.Reveal())
	}
	if !key.IsZero() {
		ts, sig := sign([]byte(key.Reveal()), body, s.now())
		req.Header.Set(TimestampHeader, ts)
		req.Header.Set(SignatureHeader, sig)
	}
	resp, err := s.client.Do(req)
	if err != nil {
		// Deliver's error names the URL (without its query, which may
		// hold a key); the *url.Error's own naming of it is dropped.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("no answer within the timeout of %s: %w", s.timeout, err)
		}
		return err
	}
	defer resp.Body.Close()
	// Read a little of the answer for the error, and drain a bounded rest
	// so the connection can be reused.
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	return &StatusError{
		StatusCode: resp.StatusCode,
		RetryAfter: retryAfter(resp.Header.Get("Retry-After"), time.Now()),
		Body:       sink.Sanitize(snippet, tok),
	}
}

// Close releases idle connections. The Sink must not be used after.
func (s *Sink) Close() error {
	s.client.CloseIdleConnections()
	return nil
}

// StatusError is an answer other than 2xx.
type StatusError struct {
	StatusCode int
	// RetryAfter is the endpoint's Retry-After, zero if none.
	RetryAfter time.Duration
	// Body is the start of the answer's body, printable, at most 200
	// characters.
	Body string
}

// Transient reports whether the status says the endpoint may accept the
// same batch later (408, 429, 5xx). A 4xx other than 408 and 429 says the
// endpoint refuses this request as it is: the batch is still delivered
// again (the spooler never drops audit records), but it will keep failing
// until the endpoint or the configuration changes.
func (e *StatusError) Transient() bool {
	return e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests || e.StatusCode >= 500
}

func (e *StatusError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "endpoint answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Body != "" {
		fmt.Fprintf(&b, " (%q)", e.Body)
	}
	switch {
	case e.StatusCode == http.StatusUnauthorized || e.StatusCode == http.StatusForbidden:
		b.WriteString(": the endpoint refuses the token; check token_file")
	case e.StatusCode == http.StatusRequestEntityTooLarge:
		b.WriteString(": the batch is too large for the endpoint; lower the batch size")
	case e.StatusCode >= 300 && e.StatusCode < 400:
		b.WriteString(": a redirect that was not followed")
	case !e.Transient():
		b.WriteString(": the endpoint refuses this request; it will be retried but will likely fail the same way until the endpoint or the configuration changes")
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, "; retry after %s", e.RetryAfter)
	}
	return b.String()
}

// retryAfter parses a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil && n > 0 {
		return time.Duration(n) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now).Round(time.Second)
	}
	return 0
}

// redactURL returns u without its query, which may carry a key.
func redactURL(u *url.URL) string {
	c := *u
	c.User = nil
	if c.RawQuery != "" {
		c.RawQuery = "..."
	}
	c.Fragment = ""
	return c.String()
}
