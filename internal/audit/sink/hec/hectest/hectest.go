// Package hectest is a fake Splunk HTTP Event Collector for tests.
//
// Splunk itself cannot run where jitproxy is tested: there is no Debian
// package, it is not open source, and the tests have no network to fetch
// an image. So this fake follows Splunk's documented HEC API, closely
// enough to show the sink's requests right and its handling of every
// documented answer:
//
//   - POST /services/collector/event (and its aliases /services/collector
//     and /services/collector/event/1.0) takes one or more JSON event
//     objects, concatenated, each with "event" and optional "time",
//     "host", "source", "sourcetype", "index" and "fields";
//     https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/format-events-for-http-event-collector
//   - the token comes as "Authorization: Splunk TOKEN";
//   - with indexer acknowledgement on for the token (useACK), every
//     request needs a channel, a GUID in the X-Splunk-Request-Channel
//     header or the channel query parameter, and a successful answer
//     carries {"text":"Success","code":0,"ackId":N}, N counting from 0 per
//     channel; POST /services/collector/ack with {"acks":[N,...]} answers
//     {"acks":{"N":false|true,...}}, true once the events of that request
//     are indexed;
//     https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/about-http-event-collector-indexer-acknowledgment
//   - errors are {"text":"...","code":N} with the documented status and
//     code (see the Code constants);
//     https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/troubleshoot-http-event-collector
//
// What it does not model: raw and metrics endpoints, query-string and
// basic authentication, gzip bodies, fields extraction, the health
// endpoint, channel idle expiry (maxIdleTime), per-token settings other
// than useACK and allowed indexes, and indexing itself: events become
// "indexed" after a configurable delay, or when the test says.
package hectest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// HEC status codes with the texts and HTTP statuses Splunk documents.
const (
	CodeSuccess             = 0
	CodeTokenDisabled       = 1  // 403
	CodeTokenRequired       = 2  // 401
	CodeInvalidAuth         = 3  // 401
	CodeInvalidToken        = 4  // 403
	CodeNoData              = 5  // 400
	CodeInvalidDataFormat   = 6  // 400
	CodeIncorrectIndex      = 7  // 400
	CodeInternalError       = 8  // 500
	CodeServerBusy          = 9  // 503
	CodeChannelMissing      = 10 // 400
	CodeInvalidChannel      = 11 // 400
	CodeEventFieldRequired  = 12 // 400
	CodeEventFieldBlank     = 13 // 400
	CodeAckDisabled         = 14 // 400
	codeUnsupportedEndpoint = 404
)

var codes = map[int]struct {
	status int
	text   string
}{
	CodeTokenDisabled:      {http.StatusForbidden, "Token disabled"},
	CodeTokenRequired:      {http.StatusUnauthorized, "Token is required"},
	CodeInvalidAuth:        {http.StatusUnauthorized, "Invalid authorization"},
	CodeInvalidToken:       {http.StatusForbidden, "Invalid token"},
	CodeNoData:             {http.StatusBadRequest, "No data"},
	CodeInvalidDataFormat:  {http.StatusBadRequest, "Invalid data format"},
	CodeIncorrectIndex:     {http.StatusBadRequest, "Incorrect index"},
	CodeInternalError:      {http.StatusInternalServerError, "Internal server error"},
	CodeServerBusy:         {http.StatusServiceUnavailable, "Server is busy"},
	CodeChannelMissing:     {http.StatusBadRequest, "Data channel is missing"},
	CodeInvalidChannel:     {http.StatusBadRequest, "Invalid data channel"},
	CodeEventFieldRequired: {http.StatusBadRequest, "Event field is required"},
	CodeEventFieldBlank:    {http.StatusBadRequest, "Event field cannot be blank"},
	CodeAckDisabled:        {http.StatusBadRequest, "ACK is disabled"},
}

// Options configures a Server.
type Options struct {
	// Token is the one HEC token the server accepts. Required.
	Token string
	// Ack turns on indexer acknowledgement for the token (useACK).
	Ack bool
	// Indexes, if not empty, are the indexes the token may write to.
	Indexes []string
	// IndexDelay is how long after its request an event is indexed.
	IndexDelay time.Duration
	// TLS serves HTTPS with httptest's certificate (Server.Certificate).
	TLS bool
}

// Event is one event as the server indexed it.
type Event struct {
	Channel    string
	Time       json.Number
	Host       string
	Source     string
	Sourcetype string
	Index      string
	// Event is the event member as sent.
	Event json.RawMessage
}

// Server is a fake HEC. It is safe for concurrent use.
type Server struct {
	opts Options
	addr string

	mu       sync.Mutex
	srv      *httptest.Server
	busy     bool
	disabled bool
	hold     bool
	indexed  []Event
	channels map[string]*channel // forgotten on Stop, as by a crash
	requests []string            // "METHOD PATH code"
}

type channel struct {
	next    int
	pending map[int]*batch
	done    map[int]bool
}

type batch struct {
	at     time.Time
	events []Event
}

// Start starts a Server on a free 127.0.0.1 port; the test's cleanup
// stops it.
func Start(t testing.TB, o Options) *Server {
	t.Helper()
	if o.Token == "" {
		t.Fatal("hectest: Options.Token is required")
	}
	s := &Server{opts: o, channels: map[string]*channel{}}
	s.srv = s.newServer(nil)
	s.addr = s.srv.Listener.Addr().String()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) newServer(l net.Listener) *httptest.Server {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	if l != nil {
		srv.Listener.Close()
		srv.Listener = l
	}
	if s.opts.TLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	return srv
}

// URL is the server's base URL, http://127.0.0.1:PORT (https with TLS).
func (s *Server) URL() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv.URL
}

// Server returns the running httptest.Server (for its Certificate).
func (s *Server) Server() *httptest.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// Stop stops listening and ends open connections, as a crash would:
// events not yet indexed, and every channel with its acknowledgement
// state, are lost. Indexed events stay.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.mu.Unlock()
	srv.CloseClientConnections()
	srv.Close()
	s.mu.Lock()
	s.channels = map[string]*channel{}
	s.mu.Unlock()
}

// Restart listens again on the same address.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	l, err := net.Listen("tcp", s.addr)
	if err != nil {
		t.Fatalf("hectest: listen again on %s: %v", s.addr, err)
	}
	srv := s.newServer(l)
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

// SetBusy makes event requests fail with 503 "Server is busy" (code 9),
// as when Splunk's queues are full.
func (s *Server) SetBusy(busy bool) { s.set(func() { s.busy = busy }) }

// SetTokenDisabled makes every request fail with 403 "Token disabled".
func (s *Server) SetTokenDisabled(d bool) { s.set(func() { s.disabled = d }) }

// Hold keeps accepted events from being indexed, so their
// acknowledgements stay false, until Hold(false).
func (s *Server) Hold(hold bool) { s.set(func() { s.hold = hold }) }

func (s *Server) set(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f()
}

// Events returns the events indexed so far, in order.
func (s *Server) Events() []Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.indexLocked(time.Now())
	return slices.Clone(s.indexed)
}

// Requests returns "METHOD PATH CODE" for each request so far, CODE being
// the HEC code answered.
func (s *Server) Requests() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.requests)
}

// indexLocked indexes the pending batches whose delay has passed.
func (s *Server) indexLocked(now time.Time) {
	if s.hold {
		return
	}
	for _, ch := range s.channels {
		ids := make([]int, 0, len(ch.pending))
		for id := range ch.pending {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		for _, id := range ids {
			if b := ch.pending[id]; now.Sub(b.at) >= s.opts.IndexDelay {
				s.indexed = append(s.indexed, b.events...)
				delete(ch.pending, id)
				ch.done[id] = true
			}
		}
	}
}

// guid is the form Splunk wants of a channel.
var guid = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	code, extra := s.handle(r, body)
	s.requests = append(s.requests, r.Method+" "+r.URL.Path+" "+strconv.Itoa(code))
	if code == codeUnsupportedEndpoint {
		http.NotFound(w, r)
		return
	}
	status, resp := http.StatusOK, map[string]any{}
	if code == CodeSuccess && extra["acks"] == nil {
		resp["text"], resp["code"] = "Success", 0
	} else if code != CodeSuccess {
		status = codes[code].status
		resp["text"], resp["code"] = codes[code].text, code
	}
	for k, v := range extra {
		resp[k] = v
	}
	w.Header().Set("Content-Type", "application/json; charset=UTF-8")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(resp)
}

// handle answers a request with a HEC code and the members to add to the
// answer.
func (s *Server) handle(r *http.Request, body []byte) (int, map[string]any) {
	var ack bool
	switch r.URL.Path {
	case "/services/collector", "/services/collector/event", "/services/collector/event/1.0":
	case "/services/collector/ack":
		ack = true
	default:
		return codeUnsupportedEndpoint, nil
	}
	if r.Method != http.MethodPost {
		return codeUnsupportedEndpoint, nil
	}
	auth := r.Header.Get("Authorization")
	tok, ok := strings.CutPrefix(auth, "Splunk ")
	switch {
	case auth == "":
		return CodeTokenRequired, nil
	case !ok:
		return CodeInvalidAuth, nil
	case tok != s.opts.Token:
		return CodeInvalidToken, nil
	case s.disabled:
		return CodeTokenDisabled, nil
	}
	chName := r.Header.Get("X-Splunk-Request-Channel")
	if chName == "" {
		chName = r.URL.Query().Get("channel")
	}
	switch {
	case ack && !s.opts.Ack:
		return CodeAckDisabled, nil
	case chName == "" && s.opts.Ack:
		return CodeChannelMissing, nil
	case chName != "" && !guid.MatchString(chName):
		return CodeInvalidChannel, nil
	}
	if ack {
		return s.handleAck(chName, body)
	}
	if s.busy {
		return CodeServerBusy, nil
	}
	events, code, bad := parseEvents(body, chName)
	if code != CodeSuccess {
		if bad >= 0 {
			return code, map[string]any{"invalid-event-number": bad}
		}
		return code, nil
	}
	for i, e := range events {
		if len(s.opts.Indexes) > 0 && e.Index != "" && !slices.Contains(s.opts.Indexes, e.Index) {
			return CodeIncorrectIndex, map[string]any{"invalid-event-number": i}
		}
	}
	if !s.opts.Ack {
		s.indexed = append(s.indexed, events...)
		return CodeSuccess, nil
	}
	ch := s.channels[chName]
	if ch == nil {
		ch = &channel{pending: map[int]*batch{}, done: map[int]bool{}}
		s.channels[chName] = ch
	}
	id := ch.next
	ch.next++
	ch.pending[id] = &batch{at: time.Now(), events: events}
	return CodeSuccess, map[string]any{"ackId": id}
}

func (s *Server) handleAck(chName string, body []byte) (int, map[string]any) {
	var q struct {
		Acks []int `json:"acks"`
	}
	if err := json.Unmarshal(body, &q); err != nil || q.Acks == nil {
		return CodeInvalidDataFormat, nil
	}
	s.indexLocked(time.Now())
	ch := s.channels[chName]
	status := map[string]bool{}
	for _, id := range q.Acks {
		status[strconv.Itoa(id)] = ch != nil && ch.done[id]
	}
	return CodeSuccess, map[string]any{"acks": status}
}

// parseEvents reads concatenated event objects. On error it returns the
// code and the index of the event at fault (-1 if none).
func parseEvents(body []byte, chName string) ([]Event, int, int) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, CodeNoData, -1
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var events []Event
	for i := 0; ; i++ {
		var raw struct {
			Time       json.Number     `json:"time"`
			Host       string          `json:"host"`
			Source     string          `json:"source"`
			Sourcetype string          `json:"sourcetype"`
			Index      string          `json:"index"`
			Event      json.RawMessage `json:"event"`
			Fields     map[string]any  `json:"fields"`
		}
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return events, CodeSuccess, -1
		}
		if err != nil {
			return nil, CodeInvalidDataFormat, i
		}
		switch e := bytes.TrimSpace(raw.Event); {
		case e == nil:
			return nil, CodeEventFieldRequired, i
		case string(e) == `""` || string(e) == "null":
			return nil, CodeEventFieldBlank, i
		}
		events = append(events, Event{
			Channel: chName, Time: raw.Time, Host: raw.Host, Source: raw.Source,
			Sourcetype: raw.Sourcetype, Index: raw.Index, Event: raw.Event,
		})
	}
}
