package hectest

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestDocumentedAnswers checks the fake's answers against the requests
// and answers of Splunk's HEC documentation.
func TestDocumentedAnswers(t *testing.T) {
	const channel = "FE0ECFAD-13D5-401B-847D-77833BD77131"
	type req struct {
		path, auth, channel, body string
	}
	for _, tt := range []struct {
		name   string
		ack    bool
		reqs   []req
		status int    // of the last request
		answer string // of the last request
	}{
		{
			name:   "one event, no ack",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: `{"event":"hello"}`}},
			status: 200, answer: `{"code":0,"text":"Success"}`,
		},
		{
			name: "batched events with ack: ackIds count from 0 per channel",
			ack:  true,
			reqs: []req{
				{path: "/services/collector/event", auth: "Splunk tok", channel: channel, body: `{"event":{"a":1}}{"event":"b","time":1426279439.123}`},
				{path: "/services/collector", auth: "Splunk tok", channel: channel, body: `{"event":"c"}`},
			},
			status: 200, answer: `{"ackId":1,"code":0,"text":"Success"}`,
		},
		{
			name: "ack query",
			ack:  true,
			reqs: []req{
				{path: "/services/collector/event", auth: "Splunk tok", channel: channel, body: `{"event":"a"}`},
				{path: "/services/collector/ack", auth: "Splunk tok", channel: channel, body: `{"acks":[0,1]}`},
			},
			status: 200, answer: `{"acks":{"0":true,"1":false}}`,
		},
		{
			name:   "ack query on a token without ack",
			reqs:   []req{{path: "/services/collector/ack", auth: "Splunk tok", channel: channel, body: `{"acks":[0]}`}},
			status: 400, answer: `{"code":14,"text":"ACK is disabled"}`,
		},
		{
			name:   "no token",
			reqs:   []req{{path: "/services/collector/event", body: `{"event":"a"}`}},
			status: 401, answer: `{"code":2,"text":"Token is required"}`,
		},
		{
			name:   "not Splunk authorization",
			reqs:   []req{{path: "/services/collector/event", auth: "Bearer tok", body: `{"event":"a"}`}},
			status: 401, answer: `{"code":3,"text":"Invalid authorization"}`,
		},
		{
			name:   "unknown token",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk other", body: `{"event":"a"}`}},
			status: 403, answer: `{"code":4,"text":"Invalid token"}`,
		},
		{
			name:   "ack without a channel",
			ack:    true,
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: `{"event":"a"}`}},
			status: 400, answer: `{"code":10,"text":"Data channel is missing"}`,
		},
		{
			name:   "a channel that is not a GUID",
			ack:    true,
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", channel: "my-channel", body: `{"event":"a"}`}},
			status: 400, answer: `{"code":11,"text":"Invalid data channel"}`,
		},
		{
			name:   "no data",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: ``}},
			status: 400, answer: `{"code":5,"text":"No data"}`,
		},
		{
			name:   "invalid data",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: `{"event":"a"}{"event":`}},
			status: 400, answer: `{"code":6,"invalid-event-number":1,"text":"Invalid data format"}`,
		},
		{
			name:   "no event field",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: `{"time":1}`}},
			status: 400, answer: `{"code":12,"invalid-event-number":0,"text":"Event field is required"}`,
		},
		{
			name:   "blank event",
			reqs:   []req{{path: "/services/collector/event", auth: "Splunk tok", body: `{"event":""}`}},
			status: 400, answer: `{"code":13,"invalid-event-number":0,"text":"Event field cannot be blank"}`,
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{Token: "tok", Ack: tt.ack})
			var status int
			var answer string
			for _, r := range tt.reqs {
				hr, err := http.NewRequest("POST", s.URL()+r.path, strings.NewReader(r.body))
				if err != nil {
					t.Fatal(err)
				}
				if r.auth != "" {
					hr.Header.Set("Authorization", r.auth)
				}
				if r.channel != "" {
					hr.Header.Set("X-Splunk-Request-Channel", r.channel)
				}
				resp, err := http.DefaultClient.Do(hr)
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				status, answer = resp.StatusCode, strings.TrimSpace(string(b))
			}
			if status != tt.status {
				t.Errorf("status %d, want %d", status, tt.status)
			}
			var got, want any
			json.Unmarshal([]byte(answer), &got)
			json.Unmarshal([]byte(tt.answer), &want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("answer %s (-want +got):\n%s", answer, diff)
			}
		})
	}
}

// TestStopLosesWhatIsNotIndexed: a crash loses accepted events not yet
// indexed and the channels' acknowledgement state, not indexed events.
func TestStopLosesWhatIsNotIndexed(t *testing.T) {
	const channel = "FE0ECFAD-13D5-401B-847D-77833BD77131"
	s := Start(t, Options{Token: "tok", Ack: true})
	post := func(path, body string) string {
		t.Helper()
		r, _ := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
		r.Header.Set("Authorization", "Splunk tok")
		r.Header.Set("X-Splunk-Request-Channel", channel)
		resp, err := http.DefaultClient.Do(r)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return strings.TrimSpace(string(b))
	}
	post("/services/collector/event", `{"event":"indexed"}`)
	if got := post("/services/collector/ack", `{"acks":[0]}`); got != `{"acks":{"0":true}}` {
		t.Fatalf("ack = %s", got)
	}
	s.Hold(true)
	post("/services/collector/event", `{"event":"lost"}`)
	s.Stop()
	s.Restart(t)
	s.Hold(false)
	if got := post("/services/collector/ack", `{"acks":[1]}`); got != `{"acks":{"1":false}}` {
		t.Errorf("ack of a lost request = %s", got)
	}
	var got []string
	for _, e := range s.Events() {
		got = append(got, string(e.Event))
	}
	if diff := cmp.Diff([]string{`"indexed"`}, got); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}
