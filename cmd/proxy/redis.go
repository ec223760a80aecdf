package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/redis/go-redis/v9"
)

// addrs returns the configured addresses: Address as a list of one, or
// Addresses. None means the embedded miniredis.
func (r RedisConfig) addrs() []string {
	if r.Address != "" {
		return []string{r.Address}
	}
	return r.Addresses
}

// embedded reports whether no Redis is configured, so that jitproxy runs
// an embedded miniredis.
func (r RedisConfig) embedded() bool { return len(r.addrs()) == 0 }

// keyPrefix is KeyPrefix, or its default: "{jitproxy}:" in a Cluster, where
// the hash tag puts every key in one slot (jitproxy's transactions and
// scripts touch several keys at once), else "jitproxy:".
func (r RedisConfig) keyPrefix() string {
	switch {
	case r.KeyPrefix != "":
		return r.KeyPrefix
	case r.Cluster:
		return "{jitproxy}:"
	}
	return "jitproxy:"
}

// describe says, for the start banner, which Redis jitproxy uses; never a
// secret.
func (r RedisConfig) describe() string {
	switch {
	case r.embedded():
		return "embedded miniredis (one process, lost on exit)"
	case r.Sentinel.MasterName != "":
		return fmt.Sprintf("redis master %q through sentinels %s", r.Sentinel.MasterName, strings.Join(r.addrs(), ", "))
	case r.Cluster:
		return "redis cluster through " + strings.Join(r.addrs(), ", ")
	}
	return "redis at " + r.addrs()[0]
}

// validate reports every problem of the redis settings at once.
func (r RedisConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf("redis."+format, args...)) }
	if r.Address != "" && len(r.Addresses) > 0 {
		bad("address and addresses: set one or the other")
	}
	for _, a := range append([]string{r.Address}, r.Addresses...) {
		if _, _, err := net.SplitHostPort(a); a != "" && err != nil {
			bad("address %q: want host:port", a)
		}
	}
	s := r.Sentinel
	if r.embedded() {
		// The embedded miniredis takes none of the settings of a real one.
		if s != (RedisSentinelConfig{}) || r.Cluster || r.TLS != (RedisTLSConfig{}) || r.Username != "" || r.PasswordFile != "" {
			bad("sentinel, cluster, tls, username and password_file need address or addresses (none: an embedded miniredis)")
		}
	}
	if s.MasterName == "" && (s.Username != "" || s.PasswordFile != "") {
		bad("sentinel.username and sentinel.password_file need sentinel.master_name")
	}
	if s.MasterName != "" && r.Cluster {
		bad("sentinel.master_name and cluster: a Sentinel names one master, a Cluster has many; choose one")
	}
	if len(r.addrs()) > 1 && s.MasterName == "" && !r.Cluster {
		bad("addresses has %d entries: several are the sentinels (set sentinel.master_name) or a cluster's nodes (set cluster: true)", len(r.addrs()))
	}
	if r.DB < 0 {
		bad("db %d must not be negative", r.DB)
	}
	if r.Cluster && r.DB != 0 {
		bad("db %d: a Redis Cluster has database 0 only", r.DB)
	}
	if r.Cluster && r.KeyPrefix != "" && !hasHashTag(r.KeyPrefix) {
		bad("key_prefix %q: in a cluster it needs a hash tag such as {jitproxy}:, so that every key is in one slot", r.KeyPrefix)
	}
	t := r.TLS
	if !t.Enabled && t != (RedisTLSConfig{}) {
		bad("tls: ca_file, cert_file, key_file and server_name need tls.enabled")
	}
	if (t.CertFile == "") != (t.KeyFile == "") {
		bad("tls: set both cert_file and key_file, or neither")
	}
	return errors.Join(errs...)
}

// hasHashTag reports whether key has a non-empty {...} part, which Redis
// Cluster hashes instead of the whole key.
func hasHashTag(key string) bool {
	_, after, ok := strings.Cut(key, "{")
	if !ok {
		return false
	}
	i := strings.IndexByte(after, '}')
	return i > 0
}

// options builds the universal client's options from a validated r,
// reading the password and TLS files. go-redis chooses the client from
// them: a failover client when MasterName is set, a cluster client when
// IsClusterMode is, else a plain one. Errors name the file, never its
// contents.
func (r RedisConfig) options() (*redis.UniversalOptions, error) {
	opts := &redis.UniversalOptions{
		Addrs: r.addrs(), DB: r.DB, Username: r.Username,
		MasterName: r.Sentinel.MasterName, SentinelUsername: r.Sentinel.Username,
		IsClusterMode: r.Cluster,
	}
	var err error
	if opts.Password, err = readPassword("redis.password_file", r.PasswordFile); err != nil {
		return nil, err
	}
	if opts.SentinelPassword, err = readPassword("redis.sentinel.password_file", r.Sentinel.PasswordFile); err != nil {
		return nil, err
	}
	if r.TLS.Enabled {
		if opts.TLSConfig, err = r.TLS.config(); err != nil {
			return nil, err
		}
	}
	return opts, nil
}

// readPassword returns the password in path without its surrounding
// white space; no path, no password. An empty file is an error.
func readPassword(what, path string) (string, error) {
	if path == "" {
		return "", nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", what, err)
	}
	p := strings.TrimSpace(string(b))
	if p == "" {
		return "", fmt.Errorf("%s %s is empty", what, path)
	}
	return p, nil
}

// config returns the client TLS configuration: TLS 1.2 or later, the
// server verified against CAFile (or the system roots).
func (t RedisTLSConfig) config() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls.ca_file: %w", err)
		}
		c.RootCAs = x509.NewCertPool()
		if !c.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("redis.tls.ca_file %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("redis.tls client certificate: %w", err)
		}
		c.Certificates = []tls.Certificate{cert}
	}
	return c, nil
}
