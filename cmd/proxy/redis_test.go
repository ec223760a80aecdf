package main

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alicebob/miniredis/v2"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"
)

func TestRedisConfigRejects(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "insecure_skip_verify does not exist", yaml: "redis: {address: r:6379, tls: {enabled: true, insecure_skip_verify: true}}\n", want: []string{"field insecure_skip_verify not found"}},
		{name: "a password only from a file", yaml: "redis: {address: r:6379, password: hunter2}\n", want: []string{"field password not found"}},
		{
			name: "every problem at once",
			yaml: `
redis:
  address: "r:6379"
  addresses: [nohost]
  cluster: true
  db: 2
  key_prefix: "jp:"
  sentinel: {master_name: mymaster}
  tls: {cert_file: c.pem}
`,
			want: []string{
				"redis.address and addresses: set one or the other", `redis.address "nohost": want host:port`,
				"redis.sentinel.master_name and cluster", "redis.db 2: a Redis Cluster has database 0 only",
				`redis.key_prefix "jp:": in a cluster it needs a hash tag`,
				"redis.tls: ca_file, cert_file, key_file and server_name need tls.enabled",
				"redis.tls: set both cert_file and key_file, or neither",
			},
		},
		{
			name: "several addresses, neither sentinels nor a cluster",
			yaml: "redis: {addresses: [a:1, b:2]}\n",
			want: []string{"redis.addresses has 2 entries: several are the sentinels (set sentinel.master_name) or a cluster's nodes (set cluster: true)"},
		},
		{
			name: "settings for a real Redis without one",
			yaml: "redis: {username: jp, sentinel: {password_file: p}}\n",
			want: []string{
				"redis.sentinel, cluster, tls, username and password_file need address or addresses",
				"redis.sentinel.username and sentinel.password_file need sentinel.master_name",
			},
		},
		{name: "negative db", yaml: "redis: {address: r:6379, db: -1}\n", want: []string{"redis.db -1 must not be negative"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, t.TempDir(), "c.yaml", tt.yaml)
			_, _, err := serveFlags([]string{"--config", p}, env(nil), &bytes.Buffer{})
			if err == nil {
				t.Fatal("serveFlags() = nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

// TestRedisOptions reads configurations as written in a file (relative
// paths included) and checks the options go-redis is given, and the client
// NewUniversalClient makes of them: a Sentinel's master name makes a
// failover client, cluster a cluster client even with one seed address.
func TestRedisOptions(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "redis-password", "s3cret-redis\n")
	writeFile(t, dir, "sentinel-password", "s3cret-sentinel")
	tests := []struct {
		name       string
		yaml       string
		want       redis.UniversalOptions
		wantClient string
		wantPrefix string
		wantBanner string
	}{
		{
			name:       "one server",
			yaml:       "redis: {address: 10.0.0.1:6379, username: jitproxy, password_file: redis-password, db: 3}\n",
			want:       redis.UniversalOptions{Addrs: []string{"10.0.0.1:6379"}, Username: "jitproxy", Password: "s3cret-redis", DB: 3},
			wantClient: "*redis.Client", wantPrefix: "jitproxy:", wantBanner: "redis at 10.0.0.1:6379",
		},
		{
			name: "sentinels",
			yaml: `
redis:
  addresses: [s1:26379, s2:26379, s3:26379]
  sentinel: {master_name: mymaster, username: watcher, password_file: sentinel-password}
  username: jitproxy
  password_file: redis-password
`,
			want: redis.UniversalOptions{
				Addrs: []string{"s1:26379", "s2:26379", "s3:26379"}, MasterName: "mymaster",
				SentinelUsername: "watcher", SentinelPassword: "s3cret-sentinel", Username: "jitproxy", Password: "s3cret-redis",
			},
			wantClient: "*redis.Client", wantPrefix: "jitproxy:",
			wantBanner: `redis master "mymaster" through sentinels s1:26379, s2:26379, s3:26379`,
		},
		{
			name:       "cluster with one seed",
			yaml:       "redis: {addresses: [c1:7000], cluster: true}\n",
			want:       redis.UniversalOptions{Addrs: []string{"c1:7000"}, IsClusterMode: true},
			wantClient: "*redis.ClusterClient", wantPrefix: "{jitproxy}:", wantBanner: "redis cluster through c1:7000",
		},
		{
			name:       "cluster with a prefix of its own",
			yaml:       "redis: {addresses: [c1:7000, c2:7000], cluster: true, key_prefix: \"jp{prod}:\"}\n",
			want:       redis.UniversalOptions{Addrs: []string{"c1:7000", "c2:7000"}, IsClusterMode: true},
			wantClient: "*redis.ClusterClient", wantPrefix: "jp{prod}:", wantBanner: "redis cluster through c1:7000, c2:7000",
		},
		{
			name:       "TLS",
			yaml:       "redis: {address: r:6380, tls: {enabled: true, server_name: redis.internal}}\n",
			want:       redis.UniversalOptions{Addrs: []string{"r:6380"}, TLSConfig: &tls.Config{MinVersion: tls.VersionTLS12, ServerName: "redis.internal"}},
			wantClient: "*redis.Client", wantPrefix: "jitproxy:", wantBanner: "redis at r:6380",
		},
		{
			name:       "embedded",
			yaml:       "redis: {}\n",
			want:       redis.UniversalOptions{},
			wantClient: "*redis.Client", wantPrefix: "jitproxy:", wantBanner: "embedded miniredis (one process, lost on exit)",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := loadConfig(writeFile(t, dir, "c.yaml", tt.yaml))
			if err != nil {
				t.Fatal(err)
			}
			if err := cfg.validate(); err != nil {
				t.Fatal(err)
			}
			opts, err := cfg.Redis.options()
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(&tt.want, opts, cmpopts.IgnoreUnexported(tls.Config{})); diff != "" {
				t.Errorf("options (-want +got):\n%s", diff)
			}
			c := redis.NewUniversalClient(opts)
			defer c.Close()
			got := []string{fmt.Sprintf("%T", c), cfg.Redis.keyPrefix(), cfg.Redis.describe()}
			if diff := cmp.Diff([]string{tt.wantClient, tt.wantPrefix, tt.wantBanner}, got); diff != "" {
				t.Errorf("client, key prefix, banner (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRedisOptionsFileErrors: a missing or empty password file, or a CA
// file without a certificate, is an error naming the file and not what it
// holds.
func TestRedisOptionsFileErrors(t *testing.T) {
	dir := t.TempDir()
	empty := writeFile(t, dir, "empty", " \n")
	notPEM := writeFile(t, dir, "ca.pem", "s3cret-not-a-cert")
	tests := []struct {
		name string
		cfg  RedisConfig
		want string
	}{
		{name: "missing password file", cfg: RedisConfig{Address: "r:1", PasswordFile: filepath.Join(dir, "nope")}, want: "redis.password_file: open " + filepath.Join(dir, "nope")},
		{name: "empty sentinel password", cfg: RedisConfig{Addresses: []string{"s:1"}, Sentinel: RedisSentinelConfig{MasterName: "m", PasswordFile: empty}}, want: "redis.sentinel.password_file " + empty + " is empty"},
		{name: "CA file without a certificate", cfg: RedisConfig{Address: "r:1", TLS: RedisTLSConfig{Enabled: true, CAFile: notPEM}}, want: "redis.tls.ca_file " + notPEM + " holds no PEM certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.cfg.options()
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("options() error = %v, want one starting %q", err, tt.want)
			}
		})
	}
}

// TestRedisClusterPrefixServes runs a cluster client against miniredis (a
// one-node cluster to go-redis: CLUSTER SLOTS names itself) through the
// state store's wiring: jitproxy starts, and its keys carry the hash tag.
func TestRedisClusterPrefixServes(t *testing.T) {
	mr := miniredis.RunT(t)
	cfg := defaultConfig()
	cfg.Redis = RedisConfig{Addresses: []string{mr.Addr()}, Cluster: true}
	c := &components{cfg: cfg}
	if err := c.openRedis(t.Context()); err != nil {
		t.Fatal(err)
	}
	defer c.redis.Close()
	if _, ok := c.redis.(*redis.ClusterClient); !ok {
		t.Fatalf("client %T, want a cluster client", c.redis)
	}
	if err := c.redis.Set(t.Context(), cfg.Redis.keyPrefix()+"probe", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"{jitproxy}:probe"}, mr.Keys()); diff != "" {
		t.Errorf("keys (-want +got):\n%s", diff)
	}
}
