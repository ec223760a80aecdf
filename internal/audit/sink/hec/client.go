package hec

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"

	"github.com/jitproxy/jitproxy/internal/audit/sink"
	"github.com/jitproxy/jitproxy/internal/secret"
)

// newClient returns the sinks' client (no environment proxy, redirects
// only to the same origin and keeping the POST) that also keeps cookies,
// for load balancers' sticky sessions: indexer acknowledgement needs the
// ack queries to reach the indexer that took the events.
func newClient(tlsConfig *tls.Config) *http.Client {
	c := sink.NewHTTPClient(tlsConfig)
	c.Jar, _ = cookiejar.New(nil) // never fails without options
	return c
}

// post sends body to url with the token and channel, and decodes a 2xx
// answer into out. Any other answer is an *Error.
func (s *Sink) post(ctx context.Context, endpoint string, body []byte, tok secret.Value, out any) error {
	rctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(rctx, http.MethodPost, endpoint, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Splunk "+tok.Reveal())
	req.Header.Set("X-Splunk-Request-Channel", s.channel)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "jitproxy-audit")
	resp, err := s.client.Do(req)
	if err != nil {
		// Deliver's error names the HEC; the *url.Error's naming of it is
		// dropped. The header is never in it.
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		if rctx.Err() != nil && ctx.Err() == nil {
			return fmt.Errorf("POST %s: no answer within the timeout of %s: %w", req.URL.Path, s.timeout, err)
		}
		return fmt.Errorf("POST %s: %w", req.URL.Path, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read the answer: %w", err)
	}
	return answer(resp.StatusCode, raw, tok, out)
}

// answer decodes a 2xx answer's body into out, or returns the *Error of
// another answer. raw comes from the network: whatever it holds, the
// error is one printable line without the token.
func answer(status int, raw []byte, tok secret.Value, out any) error {
	if status >= 200 && status < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return fmt.Errorf("HEC answered %d with a body that is not HEC's JSON: %q", status, sink.Sanitize(raw, tok))
		}
		return nil
	}
	e := &Error{StatusCode: status, Code: -1, InvalidEvent: -1}
	var hecErr struct {
		Text         string `json:"text"`
		Code         *int   `json:"code"`
		InvalidEvent *int   `json:"invalid-event-number"`
	}
	if json.Unmarshal(raw, &hecErr) == nil && hecErr.Code != nil {
		e.Code, e.Text = *hecErr.Code, sink.Sanitize([]byte(hecErr.Text), tok)
		if hecErr.InvalidEvent != nil {
			e.InvalidEvent = *hecErr.InvalidEvent
		}
	} else {
		// Not HEC's answer: a proxy or load balancer in front of it.
		e.Text = sink.Sanitize(raw, tok)
	}
	return e
}

// Error is an answer from HEC (or what stands in front of it) other than
// 2xx.
type Error struct {
	StatusCode int
	// Code is HEC's status code, -1 if the answer had none.
	Code int
	// Text is HEC's text, or the start of a body that is not HEC's, one
	// printable line of at most 200 characters.
	Text string
	// InvalidEvent is the index in its request of the event HEC refused,
	// -1 if not given.
	InvalidEvent int
}

// Transient reports whether Splunk may accept the same request later: it
// is busy (503, code 9) or failing (5xx), or a proxy timed out or limited
// the rate (408, 429). The other errors (a refused token, an index the
// token may not write to, data HEC calls invalid) will recur until the
// configuration changes; the batch is still delivered again, as every
// failed batch is.
func (e *Error) Transient() bool {
	return e.StatusCode >= 500 || e.StatusCode == http.StatusRequestTimeout || e.StatusCode == http.StatusTooManyRequests
}

// hints say what each HEC code most likely means for this sink.
var hints = map[int]string{
	1:  "the HEC token is disabled in Splunk",
	2:  "the request had no token",
	3:  "the Authorization header is malformed",
	4:  "Splunk does not know the token in token_file",
	5:  "the request had no events",
	6:  "HEC could not parse the events; this is a bug in jitproxy's encoding, and the batch will be refused again",
	7:  "the token may not write to the configured index; fix index or the token's allowed indexes",
	8:  "Splunk failed internally; retried later",
	9:  "Splunk is busy (its queues are full); retried later",
	10: "HEC wants a channel (indexer acknowledgement is on for the token)",
	11: "HEC does not accept the channel; it must be a GUID",
	12: "an event has no event field; this is a bug in jitproxy's encoding",
	13: "an event's event field is blank; this is a bug in jitproxy's encoding",
	14: "indexer acknowledgement is off for the token: turn it on for the token (useACK), or set ack: false",
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "HEC answered %d %s", e.StatusCode, http.StatusText(e.StatusCode))
	if e.Code >= 0 {
		fmt.Fprintf(&b, ", code %d %q", e.Code, e.Text)
	} else if e.Text != "" {
		fmt.Fprintf(&b, " (not HEC's answer: %q)", e.Text)
	}
	if e.InvalidEvent >= 0 {
		fmt.Fprintf(&b, " at event %d of the request", e.InvalidEvent)
	}
	switch h, ok := hints[e.Code]; {
	case ok:
		b.WriteString(": " + h)
	case e.StatusCode == http.StatusRequestEntityTooLarge:
		b.WriteString(": the request is larger than Splunk's max_content_length; lower max_request_bytes")
	case e.StatusCode == http.StatusNotFound:
		b.WriteString(": no HEC there; check url")
	}
	return b.String()
}
