package intercept

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"net"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
)

// Leaf certificate lifetimes: leaves are short-lived and replaced well
// before they expire.
const (
	leafValidity = 24 * time.Hour
	leafRenewAt  = 6 * time.Hour // renew when less than this is left
	// maxLeafCerts bounds the cache: with host patterns (any bucket of
	// *.s3.amazonaws.com) a session could otherwise make it grow without
	// end, one host name per CONNECT.
	maxLeafCerts = 4096
)

// leafCerts mints and caches one leaf certificate per host name, signed by
// the CA. It is safe for concurrent use; concurrent first requests for a
// host sign once.
type leafCerts struct {
	ca     *CA
	now    func() time.Time
	flight singleflight.Group

	mu    sync.Mutex
	certs map[string]*tls.Certificate
}

func newLeafCerts(ca *CA, now func() time.Time) *leafCerts {
	return &leafCerts{ca: ca, now: now, certs: map[string]*tls.Certificate{}}
}

// get returns a certificate for host (a DNS name or an IP literal).
func (l *leafCerts) get(host string) (*tls.Certificate, error) {
	if c, ok := l.cached(host); ok {
		return c, nil
	}
	v, err, _ := l.flight.Do(host, func() (any, error) {
		// Looked up again: a flight for host may have ended between the
		// lookup above and this one's start.
		if c, ok := l.cached(host); ok {
			return c, nil
		}
		c, err := l.sign(host)
		if err != nil {
			return nil, err
		}
		l.mu.Lock()
		if len(l.certs) >= maxLeafCerts {
			for h := range l.certs { // an arbitrary one: it is signed again if needed
				delete(l.certs, h)
				break
			}
		}
		l.certs[host] = c
		l.mu.Unlock()
		return c, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(*tls.Certificate), nil
}

// cached returns the cached certificate for host if it is not due for
// renewal.
func (l *leafCerts) cached(host string) (*tls.Certificate, bool) {
	l.mu.Lock()
	c, ok := l.certs[host]
	l.mu.Unlock()
	if ok && l.now().Before(c.Leaf.NotAfter.Add(-leafRenewAt)) {
		return c, true
	}
	return nil, false
}

func (l *leafCerts) sign(host string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	now := l.now()
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(),
		Subject:      pkix.Name{CommonName: host},
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(leafValidity),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	if ip := net.ParseIP(host); ip != nil {
		tmpl.IPAddresses = []net.IP{ip}
	} else {
		tmpl.DNSNames = []string{host}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, l.ca.Cert, &key.PublicKey, l.ca.Key)
	if err != nil {
		return nil, fmt.Errorf("sign leaf certificate for %s: %w", host, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}
