package test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestReplicasMustAgree: on one real redis-server, a second replica that
// generated its own CA, or holds other identities, refuses to start and
// says what differs; one with the first replica's CA and identities starts.
func TestReplicasMustAgree(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	rdb, err := servers.StartRedis(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rdb.Stop)
	write := fileWriter(t, dir)
	config := func(replica, identities string) string {
		write("state-"+replica+"/identities.yaml", identities)
		return write(replica+".yaml", fmt.Sprintf("state_dir: state-%s\nproxy: {listen: 127.0.0.1:0}\nadmin: {listen: 127.0.0.1:0}\nredis: {address: %s}\n", replica, rdb.Addr))
	}
	startJitproxy(t, config("a", identitiesYAML), filepath.Join(dir, "state-a"), &outputs{})

	refused := func(replica, identities string, want ...string) {
		t.Helper()
		out, err := exec.Command(jitproxyBin, "serve", "--config", config(replica, identities)).CombinedOutput()
		if err == nil {
			t.Fatalf("replica %s started", replica)
		}
		for _, w := range want {
			if !strings.Contains(string(out), w) {
				t.Errorf("replica %s: output does not say %q:\n%s", replica, w, out)
			}
		}
	}
	// Its own CA, generated at start.
	refused("b", identitiesYAML, "disagrees with the replicas running on the same Redis", "CA certificate", "generated its own CA or identities")
	// The first replica's CA, but another identity's groups.
	for _, f := range []string{"ca.crt", "ca.key"} {
		write(filepath.Join("state-c", f), string(mustRead(t, filepath.Join(dir, "state-a", f))))
	}
	refused("c", strings.Replace(identitiesYAML, "{name: dev, groups: [developers]", "{name: dev, groups: [developers, sre]", 1), "identities and users")
	// The same CA and identities: it starts.
	startJitproxy(t, config("c", identitiesYAML), filepath.Join(dir, "state-c"), &outputs{})
}
