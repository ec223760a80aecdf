// Package hec is the audit sink that sends records to Splunk's HTTP Event
// Collector (HEC).
//
// A batch goes to POST /services/collector/event as concatenated HEC event
// objects, one per record, in stream order:
//
//	{"time":1740830400.001500,"host":"proxy-1","source":"jitproxy","sourcetype":"jitproxy:audit","index":"audit","event":{...the record...}}
//
// "event" is the record's JSON object exactly as encoded (so the hash
// chain can be checked from what Splunk holds), not a string; "time" is
// the event's time in seconds with microseconds; "index" is left out
// unless configured (the token's default index applies). The token, read
// from a file at every delivery, goes in "Authorization: Splunk TOKEN";
// every request carries X-Splunk-Request-Channel, a GUID fixed for the
// Sink's life.
// (https://help.splunk.com/en/splunk-enterprise/get-data-in/collect-http-event-data/format-events-for-http-event-collector)
//
// # What "delivered" means
//
// With indexer acknowledgement (the default; the HEC token must have it
// enabled, useACK), Splunk answers each request with an ackId, and the
// sink polls POST /services/collector/ack with {"acks":[N,...]} until
// every ackId of the batch reads true: the events are indexed. Only then
// does Deliver return nil. A 200 alone means only that HEC parsed the
// request; events can still be lost before they are indexed, which is why
// Splunk has acknowledgement at all.
// (https://help.splunk.com/splunk-enterprise/get-data-in/collect-http-event-data/about-http-event-collector-indexer-acknowledgment)
// If the acknowledgement does not come within AckTimeout (or before ctx
// ends), Deliver fails and the whole batch is sent again later: Splunk may
// then hold a record twice, and searches drop duplicates by the event's
// "id". With acknowledgement off, a 200 answer is delivery.
//
// A batch larger than MaxRequestBytes goes in several requests; each has
// its own ackId, and all must be acknowledged.
//
// Behind a load balancer, ack queries must reach the indexer that took the
// events: Splunk requires sticky sessions for indexer acknowledgement. The
// sink keeps cookies (as AWS's and most load balancers' stickiness needs)
// and sends every request on its one channel.
//
// # Errors
//
// An answer other than 200 is an *Error with Splunk's code and text and
// what it most likely means ("Server is busy" is Splunk's queues being
// full; "Invalid token" is the token file's content unknown to Splunk).
// Errors never hold the token. Every error means the batch is to be
// delivered again, even those that will fail the same way until the
// configuration changes (Error.Transient tells which).
package hec
