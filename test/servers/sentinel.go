package servers

import (
	"cmp"
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// StartRedisReplica starts redis-server as StartRedis does, as a replica
// of the server at master (replicaof), and waits until its link to the
// master is up and the first synchronization done.
func StartRedisReplica(ctx context.Context, dir, master string) (*Redis, error) {
	host, port, err := net.SplitHostPort(master)
	if err != nil {
		return nil, err
	}
	r, err := startRedis(ctx, dir, false, "--replicaof", host, port)
	if err != nil {
		return nil, err
	}
	linked := func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		info, err := c.Info(ctx, "replication").Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "master_link_status:up") {
			return fmt.Errorf("not linked to %s yet", master)
		}
		return nil
	}
	if err := r.waitReady(ctx, 30*time.Second, linked); err != nil {
		r.Stop()
		return nil, fmt.Errorf("redis replica: %w", err)
	}
	return r, nil
}

// Sentinel is a running redis-sentinel.
type Sentinel struct {
	*Process
	Addr string
}

// SentinelConfig is what a test's Sentinels watch, and how fast they act.
type SentinelConfig struct {
	MasterName string // default mymaster
	Master     string // host:port of the master at start
	Quorum     int    // Sentinels that must agree the master is down; default 1
	// DownAfter is how long the master must not answer to be down;
	// default 1s. FailoverTimeout bounds a failover; default 5s.
	DownAfter, FailoverTimeout time.Duration
}

// StartSentinel starts redis-sentinel on a free port watching cfg.Master,
// its configuration file (which Sentinel rewrites as it learns the
// replicas, the other Sentinels and each failover) and log under
// dir/sentinel-PORT.
func StartSentinel(ctx context.Context, dir string, cfg SentinelConfig) (*Sentinel, error) {
	bin, err := Bin("redis-sentinel")
	if err != nil {
		return nil, err
	}
	host, mport, err := net.SplitHostPort(cfg.Master)
	if err != nil {
		return nil, err
	}
	name := cmp.Or(cfg.MasterName, "mymaster")
	quorum := max(cfg.Quorum, 1)
	down := cmp.Or(cfg.DownAfter, time.Second)
	failover := cmp.Or(cfg.FailoverTimeout, 5*time.Second)
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "sentinel-"+strconv.Itoa(port))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	conf := filepath.Join(dir, "sentinel.conf")
	text := fmt.Sprintf(`port %d
bind 127.0.0.1
daemonize no
dir %s
sentinel monitor %s %s %s %d
sentinel down-after-milliseconds %s %d
sentinel failover-timeout %s %d
sentinel parallel-syncs %s 1
`, port, dir, name, host, mport, quorum, name, down.Milliseconds(), name, failover.Milliseconds(), name)
	if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
		return nil, err
	}
	p, err := start("sentinel", dir, bin, []string{conf}, nil)
	if err != nil {
		return nil, err
	}
	s := &Sentinel{Process: p, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	ready := func(ctx context.Context) error {
		c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		_, err := c.GetMasterAddrByName(ctx, name).Result()
		return err
	}
	if err := p.waitReady(ctx, 30*time.Second, ready); err != nil {
		p.Stop()
		return nil, fmt.Errorf("sentinel: %w", err)
	}
	return s, nil
}

// Master returns the sentinel's view of master name: its address, how many
// other Sentinels and replicas it knows.
func (s *Sentinel) Master(ctx context.Context, name string) (addr string, sentinels, replicas int, err error) {
	c := redis.NewSentinelClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	m, err := c.Master(ctx, name).Result()
	if err != nil {
		return "", 0, 0, err
	}
	sentinels, _ = strconv.Atoi(m["num-other-sentinels"])
	replicas, _ = strconv.Atoi(m["num-slaves"])
	return net.JoinHostPort(m["ip"], m["port"]), sentinels, replicas, nil
}

func cmpOr[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}
