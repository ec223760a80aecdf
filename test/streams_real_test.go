package test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestRevocationEndsStreamsOnEveryReplica runs two jitproxy replicas on one
// real redis-server in front of the real apiserver. An agent watches pods
// through replica A; the grant is revoked (in other rounds, the user locked
// by an admin, or the session ended) through replica B. A's stream, and so
// kubectl, ends within a second of B's answer.
func TestRevocationEndsStreamsOnEveryReplica(t *testing.T) {
	c := startRealCluster(t, servers.Options{Redis: true})
	cfgA, state := c.config(t, freeAddr(t), freeAddr(t))
	out := &outputs{}
	a := startJitproxy(t, cfgA, state, out)
	// Replica B shares the state directory (CA, identities) and Redis.
	cfgB := filepath.Join(c.dir, "jitproxy-b.yaml")
	raw, err := os.ReadFile(cfgA)
	if err != nil {
		t.Fatal(err)
	}
	b := strings.NewReplacer(a.proxyURL[len("http://"):], freeAddr(t), a.adminURL[len("http://"):], freeAddr(t)).Replace(string(raw))
	if err := os.WriteFile(cfgB, []byte(b), 0o600); err != nil {
		t.Fatal(err)
	}
	replicaB := startJitproxy(t, cfgB, state, out)

	for _, tt := range []struct {
		name string
		// grantArgs limit the grant; end ends the stream's grant or session.
		grantArgs func(session string) []string
		end       func(t *testing.T, session, grant string)
		// after, if set, checks what the agent gets once the stream ended.
		after func(t *testing.T, ag *agent)
	}{
		{
			name:      "grant revoked",
			grantArgs: func(session string) []string { return []string{"--session", session} },
			end: func(t *testing.T, _, grant string) {
				adminCall(t, replicaB, "POST", "/v1/grants/"+grant+"/revoke", "dev-token-0123456789abc")
			},
		},
		{
			// An admin's lock on the user, made through replica B: the
			// stream on A ends, and A denies the user's next request, with
			// the lock's reason, until the lock is removed.
			name:      "user locked",
			grantArgs: func(session string) []string { return []string{"--session", session} },
			end: func(t *testing.T, _, _ string) {
				// The admin API directly, for the timing; list and remove
				// through the CLI.
				var l struct{ ID string }
				body := adminCallBody(t, replicaB, "POST", "/v1/locks", "root-token-0123456789ab", `{"user":"dev","reason":"incident 7: stop everything"}`)
				if err := json.Unmarshal(body, &l); err != nil || l.ID == "" {
					t.Fatalf("lock: %v %s", err, body)
				}
				id := l.ID
				t.Cleanup(func() {
					if got := replicaB.mustCLI("lock", "list", "--as", "root"); !strings.Contains(got, id) {
						t.Errorf("lock list:\n%s", got)
					}
					replicaB.mustCLI("lock", "remove", id, "--reason", "contained", "--as", "root")
				})
			},
			after: func(t *testing.T, ag *agent) {
				ag.mustFail("user dev is locked by an administrator", "get", "pods", "-n", "demo")
				ag.mustFail("incident 7: stop everything", "get", "pods", "-n", "demo")
			},
		},
		{
			// The grant is the user's, not the session's: it stays ACTIVE.
			name:      "session ended",
			grantArgs: func(string) []string { return nil },
			end: func(t *testing.T, session, grant string) {
				adminCall(t, replicaB, "DELETE", "/v1/sessions/"+session, "runner-token-0123456789")
				t.Cleanup(func() { replicaB.cli("grant", "revoke", grant, "--as", "dev") })
			},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			kubeconfig := filepath.Join(t.TempDir(), "agent.kubeconfig")
			created := a.mustCLI("session", "create", "--as", "runner", "--agent", "watcher", "--user", "dev", "--groups", "developers", "--kubeconfig", kubeconfig)
			session := strings.Fields(created)[1]
			session = strings.TrimSuffix(session, ":")
			grant := grantID(t, replicaB.mustCLI(append([]string{"grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--reason", "watch web"}, tt.grantArgs(session)...)...))

			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, c.kubectl, "get", "pods", "-n", "demo", "--watch", "--output-watch-events")
			home := t.TempDir() // kubectl's discovery cache, for after
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "KUBECONFIG=" + kubeconfig}
			var stdout syncBuffer
			var stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan time.Time, 1)
			go func() { cmd.Wait(); exited <- time.Now() }()
			waitUntil(t, "the watch to stream its first event", 30*time.Second, func() bool { return strings.Contains(stdout.String(), "web") })

			asked := time.Now()
			tt.end(t, session, grant)
			ended := time.Now()
			select {
			case at := <-exited:
				if at.Before(asked) {
					t.Fatalf("kubectl's watch ended before the grant or session did:\n%s%s", stdout.String(), stderr.String())
				}
				t.Logf("kubectl's watch ended %s after replica B answered (which took %s)", at.Sub(ended).Round(time.Millisecond), ended.Sub(asked).Round(time.Millisecond))
			case <-time.After(time.Second):
				t.Fatalf("kubectl's watch through replica A is still open a second after replica B ended its grant:\n%s%s", stdout.String(), stderr.String())
			}
			out.add("kubectl", stdout.String()+stderr.String())
			if tt.after != nil {
				// With the watch's discovery cache: a lock denies discovery
				// too, and kubectl shows no message for a denied discovery.
				tt.after(t, &agent{t: t, kubectl: c.kubectl, kubeconfig: kubeconfig, home: home, out: out})
			}
		})
	}
	waitUntil(t, "the stream's audit record on replica A", 10*time.Second, func() bool {
		for _, e := range a.auditEvents() {
			o, _ := e["outcome"].(map[string]any)
			if msg, _ := o["error"].(string); strings.Contains(msg, "has ended while the response was streaming") {
				return true
			}
		}
		return false
	})
}

// adminCall calls a replica's admin API directly (not through the CLI, whose
// start-up would blur the timing) and wants 200.
func adminCall(t *testing.T, p *proxyProc, method, path, token string) {
	t.Helper()
	adminCallBody(t, p, method, path, token, "")
}

// adminCallBody is adminCall with a JSON body (if not empty), wanting 200
// or 201; it returns the answer's body.
func adminCallBody(t *testing.T, p *proxyProc, method, path, token, body string) []byte {
	t.Helper()
	req, err := http.NewRequest(method, p.adminURL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	answer, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusCreated {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, answer)
	}
	return answer
}
