package hec

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jitproxy/jitproxy/internal/secret"
)

// Polling for indexer acknowledgement starts after ackFirstPoll and backs
// off to ackMaxPoll between queries.
const (
	ackFirstPoll = 100 * time.Millisecond
	ackMaxPoll   = 5 * time.Second
)

// waitAcks queries POST /services/collector/ack with {"acks":[N,...]}
// until Splunk answers {"acks":{"N":true,...}} for every id, on the
// Sink's channel: the events of those requests are indexed.
// (https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/about-http-event-collector-indexer-acknowledgment;
// the endpoint's reference: services/collector/ack in the REST API
// Reference, Input endpoints.) A query that fails transiently (Splunk busy
// or unreachable) is repeated; one HEC refuses otherwise ends the wait.
func (s *Sink) waitAcks(ctx context.Context, ids []int, tok secret.Value) error {
	actx, cancel := context.WithTimeout(ctx, s.ackTimeout)
	defer cancel()
	pending := slices.Clone(ids)
	delay := ackFirstPoll
	var last error
	for {
		select {
		case <-actx.Done():
			if ctx.Err() != nil {
				return fmt.Errorf("waiting for indexer acknowledgement of ackIds %v: %w", pending, ctx.Err())
			}
			what := "the answers were false"
			if last != nil {
				what = "the last query failed: " + last.Error()
			}
			return fmt.Errorf("no indexer acknowledgement of ackIds %v on channel %s within %s (%s): the batch will be sent again, and Splunk may then hold its events twice",
				pending, s.channel, s.ackTimeout, what)
		case <-time.After(delay):
		}
		delay = min(2*delay, ackMaxPoll)

		body, _ := json.Marshal(map[string][]int{"acks": pending})
		var answer struct {
			Acks map[string]bool `json:"acks"`
		}
		err := s.post(actx, s.ackURL, body, tok, &answer)
		if err != nil {
			if e, ok := errors.AsType[*Error](err); ok && !e.Transient() {
				return fmt.Errorf("query indexer acknowledgement: %w", err)
			}
			last = err
			continue
		}
		last = nil
		pending = slices.DeleteFunc(pending, func(id int) bool { return answer.Acks[strconv.Itoa(id)] })
		if len(pending) == 0 {
			return nil
		}
	}
}
