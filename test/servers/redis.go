package servers

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// Redis is a running redis-server: in memory only, or durable.
type Redis struct {
	*Process
	Addr string
}

// StartRedis starts redis-server on a free port, with its files under dir,
// in memory only.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
	return startRedis(ctx, dir, false)
}

// StartDurableRedis starts redis-server as StartRedis does, but appending
// every write to a file in its directory and syncing it before answering
// (appendonly yes, appendfsync always): after Kill, Restart finds every
// acknowledged write again.
func StartDurableRedis(ctx context.Context, dir string) (*Redis, error) {
	return startRedis(ctx, dir, true)
}

func startRedis(ctx context.Context, dir string, durable bool, extra ...string) (*Redis, error) {
	bin, err := Bin("redis-server")
	if err != nil {
		return nil, err
	}
	dir = filepath.Join(dir, "redis")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	persistence := []string{"--appendonly", "no"}
	if durable {
		persistence = []string{"--appendonly", "yes", "--appendfsync", "always"}
	}
	args := append([]string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--daemonize", "no",
	}, persistence...)
	args = append(args, extra...)
	p, err := start("redis", dir, bin, args, nil)
	if err != nil {
		return nil, err
	}
	r := &Redis{Process: p, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	if err := p.waitReady(ctx, 30*time.Second, r.ping); err != nil {
		p.Stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return r, nil
}

func (r *Redis) ping(ctx context.Context) error {
	c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second})
	defer c.Close()
	return c.Ping(ctx).Err()
}

// Restart stops the server if it still runs and starts it again on the
// same port with the same directory. Only a durable Redis keeps its data.
func (r *Redis) Restart(ctx context.Context) error {
	if err := r.Process.restart(ctx, 30*time.Second, r.ping); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return nil
}
