package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeOnEmbeddedDefaults runs serve with no configuration file, as
// `make run` does, and drives it through the CLI: the state directory is
// created, identities generated, and the CA reused on the next start.
func TestServeOnEmbeddedDefaults(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	// start runs serve and waits for it; first says whether this start
	// generates the identities (the banner names them only then).
	start := func(first bool) (adminURL string, stop func()) {
		adminURL, banner, stop := startServe(t, "--state-dir", state, "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0")
		if !strings.Contains(banner, "CA certificate  "+filepath.Join(state, "ca.crt")) {
			t.Errorf("banner does not say where the CA is:\n%s", banner)
		}
		if got := strings.Contains(banner, "identities      "+filepath.Join(state, "identities.yaml")+" (generated"); got != first {
			t.Errorf("banner names generated identities: %v, want %v:\n%s", got, first, banner)
		}
		return adminURL, stop
	}
	admin, stop := start(true)
	e := env(map[string]string{"JITPROXY_ADMIN_URL": admin, "JITPROXY_STATE_DIR": state})
	var out bytes.Buffer
	if err := run(context.Background(), []string{"policy", "list", "--as", "dev"}, e, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "pod-reader") {
		t.Errorf("policy list:\n%s", out.String())
	}
	out.Reset()
	kc := filepath.Join(t.TempDir(), "kc")
	if err := run(context.Background(), []string{"session", "create", "--as", "runner", "--agent", "a", "--user", "dev", "--kubeconfig", kc}, e, &out, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(kc); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("kubeconfig %v %v; want mode 0600", fi, err)
	}
	ca := mustRead(t, filepath.Join(state, "ca.crt"))
	stop()

	_, stop = start(false)
	defer stop()
	if !bytes.Equal(ca, mustRead(t, filepath.Join(state, "ca.crt"))) {
		t.Error("the CA changed across restarts")
	}
}

// TestAdminCutsOffSlowClients runs serve with short admin timeouts: a
// request body that does not arrive and an idle keep-alive connection are
// both closed.
func TestAdminCutsOffSlowClients(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "c.yaml", `
state_dir: state
proxy: {listen: "127.0.0.1:0", timeouts: {idle: 300ms, body: 300ms, read_header: 300ms}}
admin: {listen: "127.0.0.1:0", timeouts: {read: 300ms, idle: 300ms, read_header: 300ms}}
`)
	adminURL, _, stop := startServe(t, "--config", cfg)
	defer stop()
	admin := strings.TrimPrefix(adminURL, "http://")
	closedWithin := func(t *testing.T, c net.Conn, d time.Duration) {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(d))
		_, err := io.ReadAll(c)
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("connection still open after %s", d)
		}
	}
	t.Run("a body that does not arrive", func(t *testing.T) {
		c, err := net.Dial("tcp", admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "POST /v1/grants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"policy\":")
		closedWithin(t, c, 5*time.Second)
	})
	t.Run("an idle keep-alive connection", func(t *testing.T) {
		c, err := net.Dial("tcp", admin)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		br := bufio.NewReader(c)
		resp, err := http.ReadResponse(br, nil)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("healthz: %v %v", resp, err)
		}
		io.Copy(io.Discard, resp.Body)
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := br.ReadByte(); err != io.EOF {
			t.Errorf("idle connection: %v, want EOF", err)
		}
	})
}

// TestServeCPUProfile runs serve with --cpu-profile: once serve has
// returned, the file holds a complete profile (gzip-compressed protobuf)
// whose sample types are those of a CPU profile.
func TestServeCPUProfile(t *testing.T) {
	dir := t.TempDir()
	prof := filepath.Join(dir, "cpu.pprof")
	adminURL, _, stop := startServe(t, "--state-dir", filepath.Join(dir, "state"), "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0", "--cpu-profile", prof)
	resp, err := http.Get(adminURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	stop()

	zr, err := gzip.NewReader(bytes.NewReader(mustRead(t, prof)))
	if err != nil {
		t.Fatalf("profile is not gzip: %v", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("profile is cut short: %v", err)
	}
	// The string table of a CPU profile names its sample types
	// (samples/count, cpu/nanoseconds).
	for _, s := range []string{"samples", "count", "cpu", "nanoseconds"} {
		if !bytes.Contains(raw, []byte(s)) {
			t.Errorf("profile (%d bytes) does not name %q", len(raw), s)
		}
	}
}

// TestServeCPUProfileUnwritable: a profile that cannot be created stops
// serve before anything listens.
func TestServeCPUProfileUnwritable(t *testing.T) {
	dir := t.TempDir()
	err := run(context.Background(), []string{"serve", "--state-dir", filepath.Join(dir, "state"), "--proxy-listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0",
		"--cpu-profile", filepath.Join(dir, "no", "such", "dir", "cpu.pprof")}, env(nil), &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil || !strings.Contains(err.Error(), "cpu profile") {
		t.Errorf("serve = %v, want a cpu profile error", err)
	}
}

// startServe runs serve with args until stop, and waits until it is ready.
// It returns the admin API's URL and what serve wrote to stderr by then
// (the banner).
func startServe(t *testing.T, args ...string) (adminURL, stderrText string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	stderr := &lockedBuffer{}
	done := make(chan error, 1)
	go func() { done <- run(ctx, append([]string{"serve"}, args...), env(nil), &bytes.Buffer{}, stderr) }()
	stop = func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve returned %v", err)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for adminURL == "" {
		if time.Now().After(deadline) {
			stop()
			t.Fatalf("not ready:\n%s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
		sc := bufio.NewScanner(strings.NewReader(stderr.String()))
		for sc.Scan() {
			var l struct{ Msg, Admin string }
			if json.Unmarshal(sc.Bytes(), &l) == nil && l.Msg == "jitproxy ready" {
				adminURL = l.Admin
			}
		}
	}
	return adminURL, stderr.String(), stop
}
