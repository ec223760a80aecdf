package servers

import (
	"context"
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
	env, err := StartEnv(ctx, t.TempDir(), Options{Redis: true, Vault: true})
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
	// Running the Vault setup again changes nothing.
	if err := env.Bootstrap(ctx, root, kubectl); err != nil {
		t.Errorf("second bootstrap: %v", err)
	}
	for _, p := range env.Processes() {
		if p.Tail(1) == "" && p.Name != "redis" {
			t.Logf("%s wrote no log", p.Name)
		}
	}
}
