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

// Redis is a running redis-server, in memory only.
type Redis struct {
	*Process
	Addr string
}

// StartRedis starts redis-server on a free port, with its files under dir.
func StartRedis(ctx context.Context, dir string) (*Redis, error) {
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
	p, err := start("redis", dir, bin, []string{
		"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--dir", dir,
		"--save", "", "--appendonly", "no", "--daemonize", "no",
	}, nil)
	if err != nil {
		return nil, err
	}
	r := &Redis{Process: p, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port))}
	err = p.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		c := redis.NewClient(&redis.Options{Addr: r.Addr, MaxRetries: -1, DialTimeout: time.Second})
		defer c.Close()
		return c.Ping(ctx).Err()
	})
	if err != nil {
		p.Stop()
		return nil, fmt.Errorf("redis: %w", err)
	}
	return r, nil
}
