package sink

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// errText is err's text, "" for nil; for a *url.Error from an
// http.Client, only what it wraps (its own text names the URL).
func errText(err error) string {
	if ue, ok := errors.AsType[*url.Error](err); ok {
		err = ue.Err
	}
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestNewHTTPClientTransport(t *testing.T) {
	// The environment's proxy settings are read once per process by
	// net/http and never apply to loopback addresses, so an end-to-end
	// check cannot tell; the transport's Proxy must be nil.
	tlsConfig := &tls.Config{MinVersion: tls.VersionTLS12}
	c := NewHTTPClient(tlsConfig)
	tr, ok := c.Transport.(*http.Transport)
	if !ok {
		t.Fatalf("transport %T, want *http.Transport", c.Transport)
	}
	if tr.Proxy != nil {
		t.Error("the transport uses a proxy function")
	}
	if tr.TLSClientConfig != tlsConfig {
		t.Error("the transport does not use the given TLS configuration")
	}
	if c.Jar != nil {
		t.Error("the client keeps cookies")
	}
}

// inbox is an endpoint that keeps what each request to it carried.
type inbox struct {
	mu  sync.Mutex
	got []string
}

func (in *inbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	in.mu.Lock()
	defer in.mu.Unlock()
	in.got = append(in.got, r.Method+" "+string(body))
}

func (in *inbox) take() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	got := in.got
	in.got = nil
	return got
}

// post POSTs body to url with c and returns Do's error.
func post(c *http.Client, url, body string) error {
	resp, err := c.Post(url, "text/plain", strings.NewReader(body))
	if err != nil {
		return err
	}
	return resp.Body.Close()
}

func TestRedirects(t *testing.T) {
	var here, other inbox
	otherSrv := httptest.NewServer(&other)
	defer otherSrv.Close()
	mux := http.NewServeMux()
	mux.Handle("/in", &here)
	mux.Handle("/301", http.RedirectHandler("/in", http.StatusMovedPermanently))
	mux.Handle("/302", http.RedirectHandler("/in", http.StatusFound))
	mux.Handle("/303", http.RedirectHandler("/in", http.StatusSeeOther))
	mux.Handle("/307", http.RedirectHandler("/in", http.StatusTemporaryRedirect))
	mux.Handle("/308", http.RedirectHandler("/in", http.StatusPermanentRedirect))
	mux.Handle("/other-port", http.RedirectHandler(otherSrv.URL+"/in", http.StatusTemporaryRedirect))
	otherPort := otherSrv.Listener.Addr().(*net.TCPAddr).Port
	mux.Handle("/other-host", http.RedirectHandler(fmt.Sprintf("http://localhost:%d/in", otherPort), http.StatusTemporaryRedirect))
	// /chain/N redirects N+1 times on the way to /in.
	mux.HandleFunc("/chain/{n}", func(w http.ResponseWriter, r *http.Request) {
		next := "/in"
		if n := r.PathValue("n"); n != "0" {
			next = fmt.Sprintf("/chain/%c", n[0]-1)
		}
		http.Redirect(w, r, next, http.StatusTemporaryRedirect)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()
	host := srv.Listener.Addr().String()
	mux.Handle("/other-scheme", http.RedirectHandler("https://"+host+"/in", http.StatusTemporaryRedirect))

	const refusedMethod = "which would resend the batch as a GET without a body, not followed: only 307 and 308 are"
	const refusedOrigin = ", not followed: only redirects to the configured scheme, host and port are"
	for _, tt := range []struct {
		name    string
		path    string
		wantErr string
		want    []string // what /in received
	}{
		{name: "none", path: "/in", want: []string{"POST batch"}},
		{name: "307 same origin", path: "/307", want: []string{"POST batch"}},
		{name: "308 same origin", path: "/308", want: []string{"POST batch"}},
		{name: "301 turns the POST into a GET", path: "/301", wantErr: "redirected with 301, " + refusedMethod},
		{name: "302 turns the POST into a GET", path: "/302", wantErr: "redirected with 302, " + refusedMethod},
		{name: "303 turns the POST into a GET", path: "/303", wantErr: "redirected with 303, " + refusedMethod},
		{name: "other port", path: "/other-port", wantErr: "redirected to " + otherSrv.URL + refusedOrigin},
		{name: "other host", path: "/other-host", wantErr: fmt.Sprintf("redirected to http://localhost:%d", otherPort) + refusedOrigin},
		{name: "other scheme", path: "/other-scheme", wantErr: "redirected to https://" + host + refusedOrigin},
		{name: "4 redirects", path: "/chain/3", want: []string{"POST batch"}},
		{name: "5 redirects", path: "/chain/4", wantErr: "stopped after 5 redirects"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := post(NewHTTPClient(nil), srv.URL+tt.path, "batch")
			if diff := cmp.Diff(tt.wantErr, errText(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, here.take()); diff != "" {
				t.Errorf("/in received (-want +got):\n%s", diff)
			}
		})
	}
	if got := other.take(); len(got) != 0 {
		t.Errorf("the other server received %q", got)
	}
}

// tlsSummary is what TestTLSConfig checks of a *tls.Config: the zero
// tlsSummary stands for a nil one.
type tlsSummary struct {
	MinVersion uint16
	RootCAs    *x509.CertPool
}

func summarize(c *tls.Config) tlsSummary {
	if c == nil {
		return tlsSummary{}
	}
	return tlsSummary{MinVersion: c.MinVersion, RootCAs: c.RootCAs}
}

func TestTLSConfig(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	defer srv.Close()
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	pool := x509.NewCertPool()
	pool.AddCert(srv.Certificate())
	notPEM := writeFile(t, "not.pem", "hello")

	for _, tt := range []struct {
		name    string
		caFile  string
		want    tlsSummary
		wantErr string
	}{
		{name: "system roots", caFile: "", want: tlsSummary{MinVersion: tls.VersionTLS12}},
		{name: "ca_file", caFile: writeFile(t, "ca.pem", string(caPEM)), want: tlsSummary{MinVersion: tls.VersionTLS12, RootCAs: pool}},
		{name: "missing", caFile: "/nonexistent/ca.pem", wantErr: "ca_file: open /nonexistent/ca.pem: no such file or directory"},
		{name: "not PEM", caFile: notPEM, wantErr: "ca_file " + notPEM + ": no PEM certificate"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := TLSConfig(tt.caFile)
			if diff := cmp.Diff(tt.wantErr, errText(err)); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, summarize(c), cmp.Comparer((*x509.CertPool).Equal)); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}
