package test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/test/servers"
)

// TestRedisSentinelFailover runs two jitproxy replicas (the real binary)
// on a real redis-server master with one replica, watched by three
// redis-sentinel processes (quorum 2), and kills the master (SIGKILL)
// while an agent keeps sending requests through replica B:
//   - until the Sentinels have promoted the replica, every request is
//     refused by jitproxy with a clear 503 (or its tunnel is refused), and
//     the upstream sees exactly as many requests as the agent got 200s:
//     nothing is forwarded without a decision;
//   - after the failover the same session's requests succeed again, on the
//     same jitproxy processes (no restart), and the grant made before the
//     kill is still ACTIVE: the test confirmed with WAIT that the replica
//     had it before killing the master (with asynchronous replication a
//     write acknowledged just before a crash can be lost; see README);
//   - both replicas are subscribed to the changes channel again on the new
//     master, and a revocation on replica A reaches replica B.
func TestRedisSentinelFailover(t *testing.T) {
	redis.SetLogger(quietRedis{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := t.TempDir()
	master, err := servers.StartRedis(ctx, filepath.Join(dir, "master"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(master.Stop)
	replica, err := servers.StartRedisReplica(ctx, filepath.Join(dir, "replica"), master.Addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(replica.Stop)
	const masterName = "jitproxy-test"
	var sentinels []*servers.Sentinel
	var sentinelAddrs []string
	for range 3 {
		s, err := servers.StartSentinel(ctx, dir, servers.SentinelConfig{
			MasterName: masterName, Master: master.Addr, Quorum: 2, DownAfter: time.Second, FailoverTimeout: 5 * time.Second,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Stop)
		sentinels = append(sentinels, s)
		sentinelAddrs = append(sentinelAddrs, s.Addr)
	}
	// A failover needs a majority of Sentinels that know each other and
	// the replica; they find each other through the master in a few seconds.
	waitUntil(t, "the sentinels to know each other and the replica", 30*time.Second, func() bool {
		for _, s := range sentinels {
			addr, others, replicas, err := s.Master(ctx, masterName)
			if err != nil || addr != master.Addr || others != 2 || replicas != 1 {
				return false
			}
		}
		return true
	})

	const ownToken, minted = "jitproxy-own-token-sentinel", "minted-token-sentinel"
	api := startFakeAPIServer(t, ownToken, minted)
	write := fileWriter(t, dir)
	caPath := write("upstream-ca.pem", string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: api.Certificate().Raw})))
	tokenPath := write("own-token", ownToken)
	config := func(replicaName string) string {
		write("state-"+replicaName+"/identities.yaml", identitiesYAML)
		return write(replicaName+".yaml", fmt.Sprintf(`
state_dir: state-%s
log: {level: debug}
proxy: {listen: 127.0.0.1:0}
admin: {listen: 127.0.0.1:0}
redis:
  addresses: [%s]
  sentinel: {master_name: %s}
targets:
  - name: demo
    kind: kubernetes
    hosts: [kubernetes.demo]
    upstream: %s
    ca_file: %s
    credentials: {token_file: %s}
`, replicaName, strings.Join(sentinelAddrs, ", "), masterName, api.URL, caPath, tokenPath))
	}
	out := &outputs{}
	a := startJitproxy(t, config("a"), filepath.Join(dir, "state-a"), out)
	// Replicas share their CA (agents trust one), as they would a Secret.
	for _, f := range []string{"ca.crt", "ca.key"} {
		write(filepath.Join("state-b", f), string(mustRead(t, filepath.Join(dir, "state-a", f))))
	}
	b := startJitproxy(t, config("b"), filepath.Join(dir, "state-b"), out)
	if !strings.Contains(b.stderr.String(), "through sentinels") {
		t.Errorf("replica B's banner does not name the sentinels:\n%s", tail(b.stderr.String(), 30))
	}

	// A session made on replica A, used through replica B.
	var sess struct {
		ProxyURL string `json:"proxy_url"`
	}
	js := a.mustCLI("session", "create", "--as", "runner", "--agent", "failover-agent", "--user", "dev", "--groups", "developers", "-o", "json")
	if err := json.Unmarshal([]byte(js), &sess); err != nil {
		t.Fatalf("session answer %q: %v", js, err)
	}
	proxyURL, err := url.Parse(sess.ProxyURL)
	if err != nil {
		t.Fatal(err)
	}
	bURL, err := url.Parse(b.proxyURL)
	if err != nil {
		t.Fatal(err)
	}
	proxyURL.Host = bURL.Host
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(mustRead(t, filepath.Join(dir, "state-a", "ca.crt")))
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(proxyURL), TLSClientConfig: &tls.Config{RootCAs: pool}}}
	// listPods says what became of one request: "200", "503: MESSAGE" from
	// jitproxy, or the refused tunnel's error.
	listPods := func() string {
		resp, err := client.Get("https://kubernetes.demo/api/v1/namespaces/demo/pods")
		if err != nil {
			return "tunnel: " + err.Error()
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode == http.StatusOK {
			return "200"
		}
		return fmt.Sprintf("%d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
	}
	upstreamLists := func() int {
		n := 0
		for _, r := range api.seen() {
			if r.Path == "/api/v1/namespaces/demo/pods" {
				n++
			}
		}
		return n
	}

	id := grantID(t, a.mustCLI("grant", "request", "pod-reader", "--as", "dev", "--namespace", "demo", "--duration", "30m", "--reason", "across a failover"))
	if got := listPods(); got != "200" {
		t.Fatalf("list pods with a grant, before the failover: %s", got)
	}
	// The grant is on the replica before the master dies: WAIT returns
	// once one replica acknowledged every write of this connection, and
	// replication is in order, so the earlier writes of jitproxy's too.
	mc := redis.NewClient(&redis.Options{Addr: master.Addr})
	defer mc.Close()
	if err := mc.Set(ctx, "failover-test-marker", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n, err := mc.Do(ctx, "WAIT", 1, 5000).Int(); err != nil || n != 1 {
		t.Fatalf("WAIT 1 5000 = %d, %v; want the replica to acknowledge", n, err)
	}

	master.Kill()
	killed := time.Now()
	var outcomes []string
	oks, refusedAt, backAt := 0, time.Time{}, time.Time{}
	deadline := killed.Add(45 * time.Second)
	for backAt.IsZero() && time.Now().Before(deadline) {
		got := listPods()
		outcomes = append(outcomes, got)
		switch {
		case got == "200" && !refusedAt.IsZero():
			backAt = time.Now()
			oks++
		case got == "200":
			oks++
		case strings.HasPrefix(got, "503: ") && strings.Contains(got, "jitproxy: cannot load your grants right now; the request was not forwarded"),
			strings.HasPrefix(got, "tunnel: ") && strings.Contains(got, "Service Unavailable"):
			if refusedAt.IsZero() {
				refusedAt = time.Now()
			}
		default:
			t.Errorf("during the failover: %s, want 200 or jitproxy's 503", got)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if refusedAt.IsZero() || backAt.IsZero() {
		t.Fatalf("after the kill: refused %v, back %v; outcomes %q\nsentinel log:\n%s", !refusedAt.IsZero(), !backAt.IsZero(), outcomes, sentinels[0].Tail(20))
	}
	t.Logf("master killed; first refusal after %s, requests served again after %s; %d requests, %d served",
		refusedAt.Sub(killed).Round(time.Millisecond), backAt.Sub(killed).Round(time.Millisecond), len(outcomes), oks)
	noInternals(t, strings.Join(outcomes, "\n"), master.Addr, replica.Addr)
	// Everything forwarded had a decision: the upstream saw the request
	// before the kill and the ones the agent got a 200 for, no more.
	if got, want := upstreamLists(), 1+oks; got != want {
		t.Errorf("the upstream saw %d pod lists, the agent was served %d", got, want)
	}
	if addr, _, _, err := sentinels[0].Master(ctx, masterName); err != nil || addr != replica.Addr {
		t.Errorf("the sentinels' master after the failover: %s, %v; want the replica %s", addr, err, replica.Addr)
	}
	if got := a.mustCLI("grant", "show", id, "--as", "dev"); !strings.Contains(got, "ACTIVE") {
		t.Errorf("the grant after the failover: %s", got)
	}

	// Both replicas follow the changes channel on the new master, and a
	// change published there reaches replica B.
	rc := redis.NewClient(&redis.Options{Addr: replica.Addr})
	defer rc.Close()
	waitUntil(t, "both jitproxy replicas to subscribe on the new master", 20*time.Second, func() bool {
		n, err := rc.PubSubNumSub(ctx, "jitproxy:changes").Result()
		return err == nil && n["jitproxy:changes"] == 2
	})
	if !strings.Contains(b.stderr.String(), "grant change subscription restored") {
		t.Errorf("replica B did not log its subscription restored:\n%s", tail(b.stderr.String(), 30))
	}
	a.mustCLI("grant", "revoke", id, "--as", "dev")
	var got string
	waitUntil(t, "the revocation on A to reach B", 10*time.Second, func() bool {
		got = listPods()
		return strings.HasPrefix(got, "403")
	})
	if !strings.Contains(got, "no active grant permits this request") {
		t.Errorf("after the revocation, through B: %s", got)
	}
}
