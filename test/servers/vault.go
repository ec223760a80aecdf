package servers

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// Vault is a running Vault dev server: in memory, unsealed, plain HTTP on
// 127.0.0.1, with a known root token.
type Vault struct {
	*Process
	Addr      string // http://127.0.0.1:PORT
	RootToken string
	Bin       string
}

// StartVault starts `vault server -dev` with its files under dir.
func StartVault(ctx context.Context, dir string) (*Vault, error) {
	bin, err := Bin("vault")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "vault")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	v := &Vault{Addr: "http://127.0.0.1:" + strconv.Itoa(port), RootToken: "root-" + randomHex(12), Bin: bin}
	p, err := start("vault", dir, bin, []string{
		"server", "-dev", "-dev-root-token-id=" + v.RootToken,
		"-dev-listen-address=127.0.0.1:" + strconv.Itoa(port), "-dev-no-store-token",
	}, []string{"HOME=" + dir, "VAULT_ADDR=", "VAULT_TOKEN=", "SKIP_SETCAP=1", "VAULT_DISABLE_MLOCK=true"})
	if err != nil {
		return nil, err
	}
	v.Process = p
	if err := p.waitReady(ctx, time.Minute, v.ready); err != nil {
		p.Stop()
		return nil, fmt.Errorf("vault: %w", err)
	}
	return v, nil
}

func (v *Vault) ready(ctx context.Context) error {
	return httpOK(http.DefaultClient, v.Addr+"/v1/sys/health", nil)(ctx)
}

// Restart stops the server if it still runs and starts it again on the
// same port with the same root token. A dev server keeps nothing: it comes
// back empty, and every token it issued before is unknown to it; run
// Env.SetupVault to configure it again.
func (v *Vault) Restart(ctx context.Context) error {
	if err := v.Process.restart(ctx, time.Minute, v.ready); err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	return nil
}

// Env returns the environment for the vault CLI as this server's root.
func (v *Vault) Env() []string {
	return []string{"VAULT_ADDR=" + v.Addr, "VAULT_TOKEN=" + v.RootToken, "VAULT=" + v.Bin}
}
