package main

import (
	"bufio"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// goproxyChildEnv, set to a file holding the upstream's CA certificate in
// PEM, makes the harness's binary serve as the goproxy subject instead of
// running the benchmark (see startGoproxy).
const goproxyChildEnv = "BENCH_E2E_GOPROXY_UPSTREAM_CA"

// goproxyProfileEnv, set to a path, makes the goproxy process write its
// CPU profile there, from its start until its standard input closes.
const goproxyProfileEnv = "BENCH_E2E_GOPROXY_CPU_PROFILE"

// goproxyChild is what the goproxy process tells the harness on its first
// line of output.
type goproxyChild struct {
	URL   string `json:"url"`
	CAPEM string `json:"ca_pem"`
}

// goproxyProcess is the goproxy subject in a process of its own, like
// jitproxy, so that its CPU time is measured the same way (/proc) and its
// requests cross processes as jitproxy's do.
type goproxyProcess struct {
	url   string
	ca    *x509.Certificate
	cmd   *exec.Cmd
	stdin io.WriteCloser
	once  sync.Once
}

// goproxyOptions are how a goproxy process runs besides its upstream.
type goproxyOptions struct {
	// cpuProfile, if not empty, is the file the process writes its CPU
	// profile to.
	cpuProfile string
	// auditDir, if not empty, makes it record every request as jitproxy
	// does, under auditDir (see goproxyAuditEnv).
	auditDir string
}

// startGoproxy runs this binary again as a goproxy subject, trusting
// upstreamCAPEM upstream, with its files in dir, and waits for its address.
func startGoproxy(dir string, upstreamCAPEM []byte, o goproxyOptions) (*goproxyProcess, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "goproxy-upstream-ca.pem")
	if err := os.WriteFile(caFile, upstreamCAPEM, 0o600); err != nil {
		return nil, err
	}
	cmd := exec.Command(self)
	cmd.Env = append(os.Environ(), goproxyChildEnv+"="+caFile)
	if o.cpuProfile != "" {
		cmd.Env = append(cmd.Env, goproxyProfileEnv+"="+o.cpuProfile)
	}
	if o.auditDir != "" {
		cmd.Env = append(cmd.Env, goproxyAuditEnv+"="+o.auditDir)
	}
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	var hello goproxyChild
	if err := json.NewDecoder(bufio.NewReader(stdout)).Decode(&hello); err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, fmt.Errorf("goproxy process: %w", err)
	}
	block, _ := pem.Decode([]byte(hello.CAPEM))
	if block == nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, errors.New("goproxy process: no CA certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		cmd.Process.Kill()
		cmd.Wait()
		return nil, err
	}
	return &goproxyProcess{url: hello.URL, ca: ca, cmd: cmd, stdin: stdin}, nil
}

// cpu returns the goproxy process's CPU time so far.
func (g *goproxyProcess) cpu() (time.Duration, error) { return procCPU(g.cmd.Process.Pid) }

// stop ends the goproxy process, which exits when its standard input
// closes, and waits for it. Calls after the first do nothing.
func (g *goproxyProcess) stop() {
	g.once.Do(func() {
		g.stdin.Close()
		g.cmd.Wait()
	})
}

// serveGoproxyChild is the goproxy process: it serves until its standard
// input closes.
func serveGoproxyChild(upstreamCAFile string) error {
	b, err := os.ReadFile(upstreamCAFile)
	if err != nil {
		return err
	}
	cas := x509.NewCertPool()
	if !cas.AppendCertsFromPEM(b) {
		return errors.New("no upstream CA certificate")
	}
	gp, ca, err := newGoproxy(cas, os.Getenv(goproxyAuditEnv))
	if err != nil {
		return err
	}
	defer gp.Close()
	if f := os.Getenv(goproxyProfileEnv); f != "" {
		out, err := os.Create(f)
		if err != nil {
			return err
		}
		defer out.Close()
		if err := pprof.StartCPUProfile(out); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	if err := json.NewEncoder(os.Stdout).Encode(goproxyChild{URL: gp.URL, CAPEM: string(pemCert(ca.Raw))}); err != nil {
		return err
	}
	io.Copy(io.Discard, os.Stdin)
	return nil
}

// newGoproxy starts a bare goproxy MITM pass-through: every CONNECT is
// intercepted with leaves signed by a fresh ECDSA P-256 CA, and requests go
// upstream unchanged over a transport that verifies the upstream against
// upstreamCAs. With a non-empty auditDir it records every request (see
// goproxyAuditEnv); the recorder is closed with the server. It returns the
// proxy server (the caller closes it) and the CA its clients must trust.
//
// The CONNECT handler is goproxy.AlwaysMitm with the CA passed in rather
// than set in goproxy.GoproxyCa, the package-level default AlwaysMitm reads.
func newGoproxy(upstreamCAs *x509.CertPool, auditDir string) (*goproxyServer, *x509.Certificate, error) {
	ca, err := newECDSACA()
	if err != nil {
		return nil, nil, err
	}
	p := goproxy.NewProxyHttpServer()
	mitm := &goproxy.ConnectAction{Action: goproxy.ConnectMitm, TLSConfig: goproxy.TLSConfigFromCA(&ca)}
	p.OnRequest().HandleConnectFunc(func(host string, _ *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
		return mitm, host
	})
	p.Tr = &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: upstreamCAs},
		MaxIdleConnsPerHost: 64,
		IdleConnTimeout:     90 * time.Second,
	}
	srv := &goproxyServer{closeAudit: func() error { return nil }}
	if auditDir != "" {
		if srv.closeAudit, err = auditGoproxy(p, auditDir); err != nil {
			return nil, nil, err
		}
	}
	srv.Server = httptest.NewServer(p)
	return srv, ca.Leaf, nil
}

// goproxyServer is a goproxy subject's server and its audit recorder.
type goproxyServer struct {
	*httptest.Server
	closeAudit func() error
}

// Close stops the server, then the recorder.
func (s *goproxyServer) Close() {
	s.Server.Close()
	if err := s.closeAudit(); err != nil {
		fmt.Fprintln(os.Stderr, "goproxy+audit: close:", err)
	}
}

// newECDSACA makes a self-signed ECDSA P-256 CA valid for a day.
func newECDSACA() (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "bench goproxy CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
