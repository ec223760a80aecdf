package servers

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestEnv starts the whole set, applies the demo setup and runs the Vault
// setup script: what the end-to-end tests and `make run` rely on.
func TestEnv(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	kubectl, err := Bin("kubectl")
	if err != nil {
		t.Fatal(err)
	}
	env, err := StartEnv(ctx, t.TempDir(), Options{Redis: true, Vault: true, MinIO: true})
	if err != nil {
		t.Fatal(err)
	}
	defer env.Stop()
	if err := env.Bootstrap(ctx, root, kubectl); err != nil {
		t.Fatal(err)
	}
	out, err := env.Kubectl(ctx, kubectl, "get", "pods", "-n", "demo", "-o", "name")
	if err != nil || strings.TrimSpace(out) != "pod/web" {
		t.Errorf("demo pods: %q %v", out, err)
	}
	// Running the Vault setup again changes nothing, even when Vault's
	// listing of its mounts is far longer than a pipe holds: a check that
	// piped the listing into grep -q under pipefail saw the writer die of
	// SIGPIPE and took the mount for absent (every time, at this size).
	bigMounts(t, env.Vault, 10, 100<<10)
	if err := env.Bootstrap(ctx, root, kubectl); err != nil {
		t.Errorf("second bootstrap: %v", err)
	}
	for _, p := range env.Processes() {
		if p.Tail(1) == "" && p.Name != "redis" {
			t.Logf("%s wrote no log", p.Name)
		}
	}
}

// bigMounts mounts n kv secrets engines, each with a description of size
// bytes, after every other mount in Vault's sorted listing.
func bigMounts(t *testing.T, v *Vault, n, size int) {
	t.Helper()
	desc := strings.Repeat("x", size)
	for i := range n {
		body := fmt.Sprintf(`{"type":"kv","description":%q}`, desc)
		req, err := http.NewRequest("POST", fmt.Sprintf("%s/v1/sys/mounts/zz-%d", v.Addr, i), strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("X-Vault-Token", v.RootToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode/100 != 2 {
			t.Fatalf("mount zz-%d: %s", i, resp.Status)
		}
	}
}
