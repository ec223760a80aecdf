// Package servers starts the real servers jitproxy is tested against, each on
// a free 127.0.0.1 port with its own directory and log: redis-server (alone,
// as a replica, and watched by redis-sentinel), etcd
// and rsyslogd (Debian packages), kube-apiserver, Vault and MinIO (built
// from the Go module proxy by build.sh into .cache/bin). The end-to-end
// tests use it, and so does devenv, which starts the whole set for a person
// (make run).
//
// Every server is started with a parent-death signal, so none outlives the
// process that started it, and Stop ends them in reverse order. Kill ends
// one as a crash would, and each server's Restart starts it again on the
// same port with the same files, for the tests of failing dependencies.
package servers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Process is one running server.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	log     *os.File

	// What start was given, for restart.
	dir, bin  string
	args, env []string
}

// start runs bin with args, its output appended to dir/NAME.log.
func start(name, dir, bin string, args, env []string) (*Process, error) {
	logPath := filepath.Join(dir, name+".log")
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = f, f
	cmd.Env = append(os.Environ(), env...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{}), log: f, dir: dir, bin: bin, args: args, env: env}
	go func() { cmd.Wait(); close(p.done) }()
	return p, nil
}

// Stop ends the server: SIGTERM, then SIGKILL after 10 seconds.
func (p *Process) Stop() {
	if p == nil {
		return
	}
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
	p.log.Close()
}

// Kill ends the server at once with SIGKILL, as a crash would, and waits
// for it to exit.
func (p *Process) Kill() {
	select {
	case <-p.done:
	default:
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	p.log.Close()
}

// restart stops the server if it still runs, starts the same command again
// (its log appended to the same file) and waits until ready succeeds. The
// restarted server is p itself, so that whatever holds p (a deferred
// Stop, a method value taken before the restart) stops the one running.
func (p *Process) restart(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	p.Stop()
	np, err := start(p.Name, p.dir, p.bin, p.args, p.env)
	if err != nil {
		return err
	}
	if err := np.waitReady(ctx, timeout, ready); err != nil {
		np.Stop()
		return err
	}
	*p = *np
	return nil
}

// Tail returns the last n lines of the server's log.
func (p *Process) Tail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// waitReady polls ready until it succeeds, the process exits or timeout passes.
func (p *Process) waitReady(ctx context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before it was ready:\n%s", p.Name, p.Tail(30))
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s (%v):\n%s", p.Name, timeout, last, p.Tail(30))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// httpOK returns a readiness check that GETs url (with the given headers)
// through client and wants 200.
func httpOK(client *http.Client, url string, header http.Header) func(context.Context) error {
	return func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
		if err != nil {
			return err
		}
		maps.Copy(req.Header, header)
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}

// freePort returns a port that was free on 127.0.0.1 a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Root returns the repository's root directory: $JITPROXY_ROOT, or the
// nearest parent of the working directory holding jitproxy's go.mod.
func Root() (string, error) {
	if r := os.Getenv("JITPROXY_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && bytes.HasPrefix(b, []byte("module github.com/jitproxy/jitproxy\n")) {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the jitproxy repository")
		}
		dir = parent
	}
}

// ErrMissing says a server binary is not installed or built.
var ErrMissing = errors.New("server binary missing: run `make test-env`")

// Bin finds a server binary: the build under .cache/bin first, then PATH.
func Bin(name string) (string, error) {
	if root, err := Root(); err == nil {
		p := filepath.Join(root, ".cache", "bin", name)
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("%s: %w", name, ErrMissing)
}
