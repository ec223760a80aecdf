package sink

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

// NewHTTPClient returns a client for delivering audit records with
// tlsConfig (nil: the defaults of crypto/tls, verifying against the system
// roots). It never uses the environment's proxy (HTTPS_PROXY and the
// like): audit goes only where it is configured to go. It follows a
// redirect only to the same scheme, host and port, only one that keeps
// the POST and its body (307, 308), and at most 4 in a row; any other
// redirect is not followed, and Do returns an error (a *url.Error) that
// says why. The client keeps no cookies: a sink that needs them sets
// Jar. It bounds dialling and the TLS handshake at 10s each, but not the
// request: callers give each request a deadline. Like any *http.Client,
// it is safe for concurrent use.
func NewHTTPClient(tlsConfig *tls.Config) *http.Client {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	transport := &http.Transport{
		Proxy:                 nil, // never HTTPS_PROXY: audit goes only where configured
		DialContext:           dialer.DialContext,
		TLSClientConfig:       tlsConfig,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          4,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
	}
	return &http.Client{Transport: transport, CheckRedirect: checkRedirect}
}

// checkRedirect refuses a redirect to another origin (the batch and the
// token would go somewhere not configured) and one that would turn the
// POST into a GET without a body (301, 302, 303), whose 2xx would count
// as a delivery of nothing.
func checkRedirect(req *http.Request, via []*http.Request) error {
	first := via[0].URL
	switch {
	case req.URL.Scheme != first.Scheme || req.URL.Host != first.Host:
		return fmt.Errorf("redirected to %s://%s, not followed: only redirects to the configured scheme, host and port are", req.URL.Scheme, req.URL.Host)
	case req.Method != http.MethodPost:
		return fmt.Errorf("redirected with %d, which would resend the batch as a %s without a body, not followed: only 307 and 308 are", req.Response.StatusCode, req.Method)
	case len(via) >= 5:
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

// TLSConfig returns the TLS configuration of a sink's endpoint: TLS 1.2 at
// least, and the certificates verified against the PEM certificates in
// caFile, or against the system roots when caFile is "" (RootCAs nil).
// When caFile cannot be read or holds no PEM certificate, it returns a nil
// *tls.Config and an error that names the setting ca_file.
func TLSConfig(caFile string) (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return c, nil
	}
	b, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("ca_file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("ca_file %s: no PEM certificate", caFile)
	}
	c.RootCAs = pool
	return c, nil
}
