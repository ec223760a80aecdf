package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/elazarl/goproxy"
)

// newGoproxy starts a bare goproxy MITM pass-through: every CONNECT is
// intercepted with leaves signed by a fresh ECDSA P-256 CA, and requests go
// upstream unchanged over a transport that verifies the upstream against
// upstreamCAs. It returns the proxy server (the caller closes it) and the
// CA its clients must trust.
//
// The CONNECT handler is goproxy.AlwaysMitm with the CA passed in rather
// than set in goproxy.GoproxyCa, the package-level default AlwaysMitm reads.
func newGoproxy(upstreamCAs *x509.CertPool) (*httptest.Server, *x509.Certificate, error) {
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
	return httptest.NewServer(p), ca.Leaf, nil
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
