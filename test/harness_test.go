// Package test holds jitproxy's end-to-end tests: the real jitproxy binary,
// driven by the real kubectl, against an upstream that is either a fake
// apiserver (to see exactly what goes upstream) or, under
// test/servers, real redis-server, etcd, kube-apiserver and Vault.
package test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// jitproxyBin is the binary under test, built once by TestMain.
var jitproxyBin string

func TestMain(m *testing.M) {
	// JITPROXY_BIN runs the tests against a given binary (an older build,
	// a release) instead of one built from this tree.
	if bin := os.Getenv("JITPROXY_BIN"); bin != "" {
		jitproxyBin = bin
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "jitproxy-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	jitproxyBin = filepath.Join(dir, "jitproxy")
	build := exec.Command("go", "build", "-race", "-o", jitproxyBin, "../cmd/proxy")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build jitproxy:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// outputs collects everything the tests saw, for the canary search.
type outputs struct {
	mu   sync.Mutex
	seen map[string]*bytes.Buffer
}

func (o *outputs) add(name, s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.seen == nil {
		o.seen = map[string]*bytes.Buffer{}
	}
	if o.seen[name] == nil {
		o.seen[name] = &bytes.Buffer{}
	}
	o.seen[name].WriteString(s)
}

// containing returns the names of the outputs that contain s.
func (o *outputs) containing(s string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var names []string
	for name, b := range o.seen {
		if strings.Contains(b.String(), s) {
			names = append(names, name)
		}
	}
	return names
}

// syncBuffer is a goroutine-safe buffer for a process's output.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// proxyProc is a running jitproxy serve.
type proxyProc struct {
	t        *testing.T
	cmd      *exec.Cmd
	stdout   *syncBuffer // audit events
	stderr   *syncBuffer // logs and banner
	stateDir string
	proxyURL string
	adminURL string
	out      *outputs
	done     chan struct{}
}

// startJitproxy runs `jitproxy serve --config cfg` and waits until it is ready.
func startJitproxy(t *testing.T, cfg, stateDir string, out *outputs) *proxyProc {
	t.Helper()
	p := &proxyProc{t: t, stdout: &syncBuffer{}, stderr: &syncBuffer{}, stateDir: stateDir, out: out, done: make(chan struct{})}
	p.cmd = exec.Command(jitproxyBin, "serve", "--config", cfg)
	// jitproxy's own AWS identity comes from its configuration alone.
	p.cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy=",
		"AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=", "AWS_PROFILE=", "AWS_CONFIG_FILE=/dev/null", "AWS_EC2_METADATA_DISABLED=true")
	p.cmd.Stdout, p.cmd.Stderr = p.stdout, p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("jitproxy stderr:\n%s", tail(p.stderr.String(), 60))
		}
	})
	deadline := time.Now().Add(2 * time.Minute)
	for {
		sc := bufio.NewScanner(strings.NewReader(p.stderr.String()))
		for sc.Scan() {
			var line struct {
				Msg   string `json:"msg"`
				Proxy string `json:"proxy"`
				Admin string `json:"admin"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "jitproxy ready" {
				p.proxyURL, p.adminURL = line.Proxy, line.Admin
				return p
			}
		}
		select {
		case <-p.done:
			t.Fatalf("jitproxy exited before it was ready:\n%s", p.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("jitproxy not ready:\n%s", p.stderr.String())
		}
	}
}

// stop ends the process with SIGTERM and records its output.
func (p *proxyProc) stop() {
	select {
	case <-p.done:
	default:
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(30 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.out != nil {
		p.out.add("jitproxy stdout (audit)", p.stdout.String())
		p.out.add("jitproxy stderr (log)", p.stderr.String())
		p.out = nil
	}
}

// cli runs a jitproxy client command against the proxy's admin API.
func (p *proxyProc) cli(args ...string) (string, error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, jitproxyBin, args...)
	cmd.Env = append(os.Environ(), "JITPROXY_ADMIN_URL="+p.adminURL, "JITPROXY_STATE_DIR="+p.stateDir,
		"HTTPS_PROXY=", "https_proxy=", "JITPROXY_TOKEN=", "JITPROXY_TOKEN_FILE=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if p.out != nil {
		p.out.add("jitproxy cli", stdout.String()+stderr.String())
	}
	return stdout.String() + stderr.String(), err
}

// mustCLI runs a client command that must succeed.
func (p *proxyProc) mustCLI(args ...string) string {
	p.t.Helper()
	out, err := p.cli(args...)
	if err != nil {
		p.t.Fatalf("jitproxy %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// settledAuditEvents returns the audit events once their stream has
// settled: events are delivered to stdout asynchronously, and a request's
// event is recorded as its response ends, a moment after the client has
// its answer.
func (p *proxyProc) settledAuditEvents() []map[string]any {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	before := len(p.stdout.String())
	for {
		time.Sleep(150 * time.Millisecond)
		now := len(p.stdout.String())
		if now == before || time.Now().After(deadline) {
			return p.auditEvents()
		}
		before = now
	}
}

// auditEvents parses the audit events written to stdout so far.
func (p *proxyProc) auditEvents() []map[string]any {
	var evs []map[string]any
	sc := bufio.NewScanner(strings.NewReader(p.stdout.String()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e map[string]any
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			p.t.Fatalf("audit line is not JSON: %q", sc.Text())
		}
		evs = append(evs, e)
	}
	return evs
}

// kubectlPath finds the kubectl the tests drive: $KUBECTL, the one built
// under .cache/bin, or the machine's.
func kubectlPath(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("KUBECTL"); p != "" {
		return p
	}
	if p, err := filepath.Abs("../.cache/bin/kubectl"); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatal("kubectl not found: run `make test-env` (or install kubectl) first")
	}
	return p
}

// agent runs tools as an agent would: with the session's kubeconfig and
// environment, a private HOME, and nothing else.
type agent struct {
	t          *testing.T
	kubectl    string
	kubeconfig string
	home       string
	out        *outputs
}

func (a *agent) run(args ...string) (string, error) {
	a.t.Helper()
	return a.runStdin("", args...)
}

// runStdin runs kubectl with stdin, for manifests given as -f -.
func (a *agent) runStdin(stdin string, args ...string) (string, error) {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, a.kubectl, append([]string{"--request-timeout=20s"}, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + a.home, "KUBECONFIG=" + a.kubeconfig}
	cmd.Stdin = strings.NewReader(stdin)
	var b bytes.Buffer
	cmd.Stdout, cmd.Stderr = &b, &b
	err := cmd.Run()
	a.out.add("kubectl", b.String())
	return b.String(), err
}

func (a *agent) mustRun(args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err != nil {
		a.t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

// mustFail runs kubectl, expects it to fail, and checks its output.
func (a *agent) mustFail(want string, args ...string) string {
	a.t.Helper()
	out, err := a.run(args...)
	if err == nil {
		a.t.Fatalf("kubectl %s succeeded, want a failure containing %q:\n%s", strings.Join(args, " "), want, out)
	}
	if !strings.Contains(out, want) {
		a.t.Fatalf("kubectl %s failed without %q:\n%s", strings.Join(args, " "), want, out)
	}
	return out
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// fileWriter returns a function that writes data to the file name under
// dir (its directories made as needed, mode 0600) and returns its path.
// Each file is written aside and renamed into place, as an editor or a
// ConfigMap update does, so a jitproxy polling the directory never reads
// half a file.
func fileWriter(t *testing.T, dir string) func(name, data string) string {
	return func(name, data string) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		tmp, err := os.CreateTemp(filepath.Dir(p), ".write-*")
		if err != nil {
			t.Fatal(err)
		}
		_, err = tmp.WriteString(data)
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(tmp.Name(), p)
		}
		if err != nil {
			os.Remove(tmp.Name())
			t.Fatal(err)
		}
		return p
	}
}
