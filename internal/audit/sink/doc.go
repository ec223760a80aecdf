// Package sink holds the pieces the HTTP sinks share: an HTTP client that
// goes only where it is configured to go (no environment proxy, redirects
// only to the same scheme, host and port, and only those that keep the
// POST), the TLS configuration of a sink's optional CA file, the bearer
// token read from its file as a secret.Value, and the sanitizing of text
// from an answer before it goes into an error.
//
// The sinks are its children (webhook, hec); siblings do not import each
// other, so what two of them need lives here. It holds no state: every
// function is safe for concurrent use.
package sink
