package servers

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// KubeAPIServer is a running kube-apiserver with RBAC, static tokens and
// ServiceAccount token signing. It runs no controllers: ServiceAccounts,
// Roles and namespaces exist only when created, and the aggregated
// ClusterRoles (view, edit, admin) are empty.
type KubeAPIServer struct {
	*Process
	URL    string // https://127.0.0.1:PORT
	CAFile string
	CAPEM  []byte
	// Tokens of the static users: admin (system:masters), jitproxy and
	// vault (no groups: their rights come from deploy/ RBAC).
	AdminToken, JitproxyToken, VaultToken string
	// AdminKubeconfig is a kubeconfig file for the admin user.
	AdminKubeconfig string
	// Files holding the jitproxy and vault tokens.
	JitproxyTokenFile, VaultTokenFile string
}

// StartKubeAPIServer starts kube-apiserver against etcd, with its files under dir.
func StartKubeAPIServer(ctx context.Context, dir, etcdURL string) (*KubeAPIServer, error) {
	bin, err := Bin("kube-apiserver")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "kube-apiserver")
	if err := os.MkdirAll(filepath.Join(dir, "certs"), 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	k := &KubeAPIServer{
		URL:           "https://127.0.0.1:" + strconv.Itoa(port),
		AdminToken:    randomHex(16),
		JitproxyToken: randomHex(16),
		VaultToken:    randomHex(16),
	}
	if err := k.writeFiles(dir); err != nil {
		return nil, err
	}
	p, err := start("kube-apiserver", dir, bin, []string{
		"--etcd-servers=" + etcdURL,
		"--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
		"--secure-port=" + strconv.Itoa(port),
		"--cert-dir=" + filepath.Join(dir, "certs"),
		"--tls-cert-file=" + filepath.Join(dir, "serving.crt"),
		"--tls-private-key-file=" + filepath.Join(dir, "serving.key"),
		"--client-ca-file=" + k.CAFile,
		"--token-auth-file=" + filepath.Join(dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		// As real clusters do: privileged containers are for admission
		// (jitproxy's, Pod Security Admission) to refuse, not the apiserver.
		"--allow-privileged=true",
		"--service-account-key-file=" + filepath.Join(dir, "sa.pub"),
		"--service-account-signing-key-file=" + filepath.Join(dir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc.cluster.local",
		"--service-cluster-ip-range=10.0.0.0/24",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=0",
	}, nil)
	if err != nil {
		return nil, err
	}
	k.Process = p
	if err := p.waitReady(ctx, 2*time.Minute, k.ready()); err != nil {
		p.Stop()
		return nil, fmt.Errorf("kube-apiserver: %w", err)
	}
	return k, nil
}

func (k *KubeAPIServer) ready() func(context.Context) error {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(k.CAPEM)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Proxy: nil}, Timeout: 5 * time.Second}
	return httpOK(hc, k.URL+"/readyz", http.Header{"Authorization": {"Bearer " + k.AdminToken}})
}

// Restart stops the server if it still runs and starts it again on the
// same port, against the same etcd, with the same certificates, tokens and
// ServiceAccount keys: tokens it issued before stay valid.
func (k *KubeAPIServer) Restart(ctx context.Context) error {
	if err := k.Process.restart(ctx, 2*time.Minute, k.ready()); err != nil {
		return fmt.Errorf("kube-apiserver: %w", err)
	}
	return nil
}

func (k *KubeAPIServer) writeFiles(dir string) error {
	cert, err := newServingCert("kube-apiserver", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "10.0.0.1")
	if err != nil {
		return err
	}
	saKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	saPub, err := x509.MarshalPKIXPublicKey(&saKey.PublicKey)
	if err != nil {
		return err
	}
	k.CAPEM = cert.CAPEM
	k.CAFile = filepath.Join(dir, "ca.crt")
	k.JitproxyTokenFile = filepath.Join(dir, "jitproxy.token")
	k.VaultTokenFile = filepath.Join(dir, "vault.token")
	k.AdminKubeconfig = filepath.Join(dir, "admin.kubeconfig")
	files := map[string][]byte{
		"ca.crt":         k.CAPEM,
		"serving.crt":    cert.CertPEM,
		"serving.key":    cert.KeyPEM,
		"sa.key":         pemBytes("RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(saKey)),
		"sa.pub":         pemBytes("PUBLIC KEY", saPub),
		"jitproxy.token": []byte(k.JitproxyToken),
		"vault.token":    []byte(k.VaultToken),
		"tokens.csv":     fmt.Appendf(nil, "%s,admin,uid-admin,\"system:masters\"\n%s,jitproxy,uid-jitproxy\n%s,vault,uid-vault\n", k.AdminToken, k.JitproxyToken, k.VaultToken),
		"admin.kubeconfig": fmt.Appendf(nil, `apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: %q, certificate-authority: %q}
users:
- name: admin
  user: {token: %q}
contexts:
- name: test
  context: {cluster: test, user: admin}
current-context: test
`, k.URL, filepath.Join(dir, "ca.crt"), k.AdminToken),
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

func pemBytes(typ string, der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der})
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
