package intercept

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	now := time.Now()
	ca, created, err := LoadOrCreateCA(dir, now)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	if fi, err := os.Stat(filepath.Join(dir, caKeyFile)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode = %v, %v; want 0600", fi.Mode().Perm(), err)
	}
	again, created, err := LoadOrCreateCA(dir, now)
	if err != nil || created {
		t.Fatalf("second start: created=%v err=%v", created, err)
	}
	if !again.Cert.Equal(ca.Cert) {
		t.Error("second start generated a new CA")
	}
	if k, ok := ca.Key.Public().(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("CA key is %T, want ECDSA P-256", ca.Key.Public())
	}
}

func TestLoadOrCreateCARefusesBrokenState(t *testing.T) {
	tests := []struct {
		name    string
		damage  func(dir string)
		wantErr string
	}{
		{name: "key missing", damage: func(dir string) { os.Remove(filepath.Join(dir, caKeyFile)) }, wantErr: "is missing"},
		{name: "cert missing", damage: func(dir string) { os.Remove(filepath.Join(dir, caCertFile)) }, wantErr: "is missing"},
		{name: "garbage cert", damage: func(dir string) { os.WriteFile(filepath.Join(dir, caCertFile), []byte("nope"), 0o644) }, wantErr: "not PEM"},
		{
			name: "key of another CA",
			damage: func(dir string) {
				other := t.TempDir()
				LoadOrCreateCA(other, time.Now())
				b, _ := os.ReadFile(filepath.Join(other, caKeyFile))
				os.WriteFile(filepath.Join(dir, caKeyFile), b, 0o600)
			},
			wantErr: "does not match",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if _, _, err := LoadOrCreateCA(dir, time.Now()); err != nil {
				t.Fatal(err)
			}
			tt.damage(dir)
			_, _, err := LoadOrCreateCA(dir, time.Now())
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("LoadOrCreateCA() error = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestLeafCerts(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	clock := func() time.Time { return now }
	leaves := newLeafCerts(ca, clock)
	var wg sync.WaitGroup
	got := make([]*x509.Certificate, 10)
	for i := range got {
		wg.Go(func() {
			c, err := leaves.get("kubernetes.demo")
			if err != nil {
				t.Error(err)
				return
			}
			got[i] = c.Leaf
		})
	}
	wg.Wait()
	for _, c := range got[1:] {
		if !c.Equal(got[0]) {
			t.Fatal("concurrent first requests signed more than one certificate")
		}
	}
	leaf := got[0]
	roots := x509.NewCertPool()
	roots.AddCert(ca.Cert)
	if _, err := leaf.Verify(x509.VerifyOptions{DNSName: "kubernetes.demo", Roots: roots, CurrentTime: now}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}
	if k, ok := leaf.PublicKey.(*ecdsa.PublicKey); !ok || k.Curve != elliptic.P256() {
		t.Errorf("leaf key %T, want ECDSA P-256", leaf.PublicKey)
	}
	if life := leaf.NotAfter.Sub(now); life > leafValidity {
		t.Errorf("leaf lives %s, want at most %s", life, leafValidity)
	}
	ip, err := leaves.get("127.0.0.1")
	if err != nil || len(ip.Leaf.IPAddresses) != 1 || len(ip.Leaf.DNSNames) != 0 {
		t.Errorf("IP leaf = %v, %v", ip.Leaf.IPAddresses, err)
	}
	// Near its end, a leaf is replaced.
	now = now.Add(leafValidity - leafRenewAt + time.Minute)
	renewed, _ := leaves.get("kubernetes.demo")
	if renewed.Leaf.Equal(leaf) {
		t.Error("leaf not renewed near expiry")
	}
}

func BenchmarkLeafCached(b *testing.B) {
	ca, _, _ := LoadOrCreateCA(b.TempDir(), time.Now())
	leaves := newLeafCerts(ca, time.Now)
	leaves.get("kubernetes.demo")
	for b.Loop() {
		leaves.get("kubernetes.demo")
	}
}

// TestLeafCertCacheIsBounded: host patterns let a session CONNECT to any
// number of host names; the cache of their certificates stays bounded.
func TestLeafCertCacheIsBounded(t *testing.T) {
	ca, _, err := LoadOrCreateCA(t.TempDir(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	l := newLeafCerts(ca, time.Now)
	for i := range maxLeafCerts + 10 {
		if _, err := l.get(fmt.Sprintf("b%d.s3.amazonaws.com", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := len(l.certs); n > maxLeafCerts {
		t.Errorf("%d certificates cached, want at most %d", n, maxLeafCerts)
	}
}
