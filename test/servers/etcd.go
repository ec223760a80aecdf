package servers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// Etcd is a running single-member etcd.
type Etcd struct {
	*Process
	URL string
}

// StartEtcd starts etcd with its data under dir.
func StartEtcd(ctx context.Context, dir string) (*Etcd, error) {
	bin, err := Bin("etcd")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "etcd")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	client, err := freePort()
	if err != nil {
		return nil, err
	}
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	clientURL := fmt.Sprintf("http://127.0.0.1:%d", client)
	peerURL := fmt.Sprintf("http://127.0.0.1:%d", peer)
	p, err := start("etcd", dir, bin, []string{
		"--name", "default", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", clientURL, "--advertise-client-urls", clientURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", "default=" + peerURL,
		"--log-level", "warn",
	}, nil)
	if err != nil {
		return nil, err
	}
	e := &Etcd{Process: p, URL: clientURL}
	err = p.waitReady(ctx, 60*time.Second, httpOK(http.DefaultClient, clientURL+"/health", nil))
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("etcd: %w", err)
	}
	return e, nil
}
