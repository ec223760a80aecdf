package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestConfigsAreValid runs `jitproxy serve --check-config` (strict
// decoding, policies, targets) on the jitproxy.yaml each chart values set
// and the sidecar component render, with the files the pod would mount
// (access policies from the rendered ConfigMap; stand-ins for the
// ServiceAccount token, the cluster's CA, Redis's password and the
// identities Secret) at temporary paths.
func TestConfigsAreValid(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "jitproxy")
	build := exec.Command("go", "build", "-o", bin, "./cmd/proxy")
	build.Dir = root(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build jitproxy: %v\n%s", err, out)
	}
	cases := map[string][]*unstructured.Unstructured{
		"kustomize-example": decode(t, buildKustomization(t, filepath.Join(root(t), "deploy", "kustomize", "example"))),
	}
	for _, file := range valuesSets(t) {
		manifest, err := renderChart(t, readValues(t, file))
		if err != nil {
			t.Fatal(err)
		}
		cases["chart-"+filepath.Base(file)] = decode(t, manifest)
	}
	for name, objs := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			paths := map[string]string{
				"/etc/jitproxy/access":                          filepath.Join(dir, "access"),
				"/etc/jitproxy/identities":                      filepath.Join(dir, "identities"),
				"/etc/jitproxy/redis":                           filepath.Join(dir, "redis"),
				"/var/run/secrets/kubernetes.io/serviceaccount": filepath.Join(dir, "sa"),
				"/var/lib/jitproxy":                             filepath.Join(dir, "state"),
			}
			for _, p := range paths {
				if err := os.MkdirAll(p, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			var cfg string
			for _, o := range objs {
				data, _, _ := unstructured.NestedStringMap(o.Object, "data")
				switch {
				case o.GetKind() != "ConfigMap":
				case data["jitproxy.yaml"] != "":
					cfg = data["jitproxy.yaml"]
				case strings.Contains(o.GetName(), "access-policies"):
					for f, p := range data {
						write(t, filepath.Join(dir, "access", f), p)
					}
				}
			}
			for from, to := range paths {
				cfg = strings.ReplaceAll(cfg, from, to)
			}
			write(t, filepath.Join(dir, "jitproxy.yaml"), cfg)
			write(t, filepath.Join(dir, "sa", "token"), "not-a-real-token")
			write(t, filepath.Join(dir, "sa", "ca.crt"), selfSignedPEM(t))
			write(t, filepath.Join(dir, "redis", "password"), "not-a-real-password")
			write(t, filepath.Join(dir, "identities", "identities.yaml"), "- {name: alice, groups: [developers], token: \"not-a-real-token-0123456789\"}\n")
			out, err := exec.Command(bin, "serve", "--config", filepath.Join(dir, "jitproxy.yaml"), "--check-config").CombinedOutput()
			if err != nil {
				t.Errorf("jitproxy refuses the rendered configuration: %v\n%s\n%s", err, out, cfg)
			}
		})
	}
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// selfSignedPEM is a CA certificate standing in for the cluster's.
func selfSignedPEM(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test cluster CA"},
		NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}
