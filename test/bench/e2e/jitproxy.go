package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// identitiesYAML are the admin-API identities the harness acts as.
const identitiesYAML = `
- {name: runner, groups: ["jitproxy:runners"], token: runner-token-0123456789}
- {name: dev, groups: [developers], token: dev-token-0123456789abc}
- {name: admin, groups: ["jitproxy:admins"], token: admin-token-0123456789a}
`

// Tokens of identitiesYAML, for calls to the admin API.
const (
	runnerToken = "runner-token-0123456789"
	adminToken  = "admin-token-0123456789a"
)

// jitproxy is a running `jitproxy serve`.
type jitproxy struct {
	bin, state, adminURL string
	proxyAddr            string // host:port of the forward proxy
	cmd                  *exec.Cmd
	stderr               *lockedBuffer
	done                 chan struct{}

	// Set by benchSession: the session of the throughput rounds.
	proxyURL string // the session's, with its credential
	caPEM    []byte // jitproxy's interception CA
	server   string // the URL the agent addresses, e.g. https://kubernetes.demo
}

// buildJitproxy builds ./cmd/proxy (without -race) into dir.
func buildJitproxy(ctx context.Context, dir string) (string, error) {
	bin := filepath.Join(dir, "jitproxy")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/proxy")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build jitproxy: %w", err)
	}
	return bin, nil
}

// jitproxyOptions say how to run one jitproxy in front of the fake
// apiserver.
type jitproxyOptions struct {
	bin string
	// dir is the instance's own directory: configuration, state, audit.
	dir           string
	upstreamURL   string
	upstreamCAPEM []byte
	redis         string  // a redis-server's address; empty: embedded miniredis
	caFrom        string  // a state directory whose CA to use; empty: its own
	cpuProfile    string  // the --cpu-profile file; empty: none
	clientQPS     float64 // the target's client.qps; 0: not set
	clientBurst   int     // the target's client.burst; 0: not set
	noAudit       bool    // no audit sink at all, to see what audit costs
}

// auditFile is where the instance's audit file sink writes.
func (o jitproxyOptions) auditFile() string { return filepath.Join(o.dir, "audit.jsonl") }

// startJitproxy writes a configuration for one kubernetes target, demo, at
// the fake apiserver (authenticating with ownToken), with audit to a file
// in o.dir, runs `jitproxy serve` on it and waits until it is ready. The
// caller stops it.
func startJitproxy(ctx context.Context, o jitproxyOptions) (*jitproxy, error) {
	state := filepath.Join(o.dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		return nil, err
	}
	redis, client := "", ""
	if o.redis != "" {
		redis = fmt.Sprintf("redis: {address: %q}\n", o.redis)
	}
	if o.clientQPS > 0 {
		client += fmt.Sprintf("qps: %g, ", o.clientQPS)
	}
	if o.clientBurst > 0 {
		client += fmt.Sprintf("burst: %d, ", o.clientBurst)
	}
	if client != "" {
		client = "    client: {" + strings.TrimSuffix(client, ", ") + "}\n"
	}
	audit := fmt.Sprintf("audit: {stdout: false, file: %s}", o.auditFile())
	if o.noAudit {
		audit = "audit: {stdout: false}"
	}
	files := map[string]string{
		"state/identities.yaml": identitiesYAML,
		"upstream-ca.pem":       string(o.upstreamCAPEM),
		"own-token":             ownToken,
		"jitproxy.yaml": fmt.Sprintf(`
state_dir: %s
log: {level: info}
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
%s
%stargets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
%s`, state, audit, redis, o.upstreamURL, filepath.Join(o.dir, "upstream-ca.pem"), filepath.Join(o.dir, "own-token"), client),
	}
	if o.caFrom != "" {
		for _, name := range []string{"ca.crt", "ca.key"} {
			b, err := os.ReadFile(filepath.Join(o.caFrom, name))
			if err != nil {
				return nil, fmt.Errorf("share the CA: %w", err)
			}
			files["state/"+name] = string(b)
		}
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(o.dir, name), []byte(data), 0o600); err != nil {
			return nil, err
		}
	}
	j := &jitproxy{bin: o.bin, state: state, stderr: &lockedBuffer{}, done: make(chan struct{})}
	args := []string{"serve", "--config", filepath.Join(o.dir, "jitproxy.yaml")}
	if o.cpuProfile != "" {
		args = append(args, "--cpu-profile", o.cpuProfile)
	}
	j.cmd = exec.Command(o.bin, args...)
	j.cmd.Env = append(os.Environ(), "HTTPS_PROXY=", "HTTP_PROXY=", "https_proxy=", "http_proxy=")
	j.cmd.Stdout, j.cmd.Stderr = io.Discard, j.stderr
	if err := j.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { j.cmd.Wait(); close(j.done) }()
	if err := j.waitReady(ctx); err != nil {
		j.stop()
		return nil, err
	}
	return j, nil
}

// benchSession creates the session of the throughput rounds and an active
// pod-reader grant for namespace demo, with the CLI as runner and dev.
func (j *jitproxy) benchSession(ctx context.Context) error {
	out, err := j.cli(ctx, "session", "create", "--as", "runner", "--agent", "bench", "--user", "dev", "--groups", "developers", "-o", "json")
	if err != nil {
		return fmt.Errorf("session create: %w", err)
	}
	var ans struct {
		ProxyURL  string `json:"proxy_url"`
		CACertPEM string `json:"ca_cert_pem"`
		Targets   []struct {
			Server string `json:"server"`
		} `json:"targets"`
	}
	if err := json.Unmarshal(out, &ans); err != nil || len(ans.Targets) == 0 {
		return fmt.Errorf("session create answered %q: %v", out, err)
	}
	j.proxyURL, j.caPEM, j.server = ans.ProxyURL, []byte(ans.CACertPEM), ans.Targets[0].Server
	if out, err := j.cli(ctx, "grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--reason", "bench"); err != nil || !bytes.Contains(out, []byte("ACTIVE")) {
		return fmt.Errorf("grant request: %v: %s", err, out)
	}
	return nil
}

// waitReady waits for the "jitproxy ready" log line and takes the admin URL
// and the proxy's address from it.
func (j *jitproxy) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	for {
		sc := bufio.NewScanner(strings.NewReader(j.stderr.String()))
		for sc.Scan() {
			var line struct{ Msg, Admin, Proxy string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "jitproxy ready" {
				j.adminURL, j.proxyAddr = line.Admin, strings.TrimPrefix(line.Proxy, "http://")
				return nil
			}
		}
		select {
		case <-j.done:
			return fmt.Errorf("jitproxy exited before it was ready:\n%s", j.stderr.String())
		case <-ctx.Done():
			return fmt.Errorf("jitproxy not ready: %w\n%s", ctx.Err(), j.stderr.String())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// cli runs a jitproxy client command against the admin API and returns its
// standard output.
func (j *jitproxy) cli(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, j.bin, args...)
	cmd.Env = append(os.Environ(), "JITPROXY_ADMIN_URL="+j.adminURL, "JITPROXY_STATE_DIR="+j.state, "HTTPS_PROXY=", "https_proxy=", "JITPROXY_TOKEN=")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("jitproxy %s: %w: %s", strings.Join(args, " "), err, stderr.String())
	}
	return out, nil
}

// cpu returns the process's user plus system CPU time so far, from
// /proc/PID/stat (Linux only).
func (j *jitproxy) cpu() (time.Duration, error) { return procCPU(j.cmd.Process.Pid) }

// procCPU returns the user and system CPU time of process pid so far, from
// /proc/PID/stat (Linux only).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// Fields after the command name, which is in parentheses and may hold
	// spaces: state is field 3, utime 14 and stime 15.
	f := strings.Fields(string(b[bytes.LastIndexByte(b, ')')+1:]))
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat %q: too few fields", b)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat %q: utime/stime not numbers", b)
	}
	const ticksPerSecond = 100 // USER_HZ on Linux
	return time.Duration(ut+st) * time.Second / ticksPerSecond, nil
}

// stop ends jitproxy with SIGTERM, or SIGKILL after 10 s. Calling it again
// does nothing.
func (j *jitproxy) stop() {
	j.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-j.done:
	case <-time.After(10 * time.Second):
		j.cmd.Process.Kill()
		<-j.done
	}
}

// logTail returns the last n lines jitproxy logged.
func (j *jitproxy) logTail(n int) string {
	lines := strings.Split(strings.TrimRight(j.stderr.String(), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// lockedBuffer is a bytes.Buffer safe for concurrent use.
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

// pemCert encodes a DER certificate as PEM.
func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
