package main

import (
	"bytes"
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/ocsf"
	"github.com/jitproxy/jitproxy/internal/audit/sink/file"
	"github.com/jitproxy/jitproxy/internal/audit/sink/hec"
	"github.com/jitproxy/jitproxy/internal/audit/sink/redisstream"
	"github.com/jitproxy/jitproxy/internal/audit/sink/syslog"
	"github.com/jitproxy/jitproxy/internal/audit/sink/webhook"
)

// auditSinkTypes are the sink types the configuration knows.
var auditSinkTypes = []string{"stdout", "file", "webhook", "splunk_hec", "syslog", "redis_stream"}

// sinks returns the configured sinks, with the stdout and file shorthands
// first.
func (a AuditConfig) sinks(stdout bool) []AuditSinkConfig {
	var out []AuditSinkConfig
	if stdout {
		out = append(out, AuditSinkConfig{Name: "stdout", Type: "stdout"})
	}
	if a.File != "" {
		out = append(out, AuditSinkConfig{Name: "file", Type: "file", File: FileSinkConfig{Path: a.File}})
	}
	return append(out, a.Sinks...)
}

func (a AuditConfig) validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !slices.Contains([]string{"", "interval", "always"}, a.Sync) {
		bad("audit.sync %q: want interval or always", a.Sync)
	}
	names := map[string]bool{"stdout": a.Stdout == nil || *a.Stdout, "file": a.File != ""}
	for i, s := range a.Sinks {
		where := fmt.Sprintf("audit.sinks[%d] (%s)", i, s.Name)
		switch {
		case s.Name == "":
			bad("audit.sinks[%d]: name is required", i)
		case names[s.Name]:
			bad("%s: the name is used twice (stdout and file are taken by audit.stdout and audit.file when set)", where)
		case filepath.Base(s.Name) != s.Name || s.Name == "." || s.Name == "..":
			bad("%s: the name names a spool directory: no slashes", where)
		}
		names[s.Name] = true
		if !slices.Contains(auditSinkTypes, s.Type) {
			bad("%s: type %q: want one of %v", where, s.Type, auditSinkTypes)
		}
		if !slices.Contains([]string{"", "native", "ocsf"}, s.Format) {
			bad("%s: format %q: want native or ocsf", where, s.Format)
		}
		if !slices.Contains([]string{"", string(audit.Enforced), string(audit.BestEffort)}, s.Mode) {
			bad("%s: mode %q: want enforced or best_effort", where, s.Mode)
		}
		if !slices.Contains([]string{"", "interval", "always"}, s.Sync) {
			bad("%s: sync %q: want interval or always", where, s.Sync)
		}
		switch {
		case s.Type == "file" && s.File.Path == "":
			bad("%s: file.path is required", where)
		case s.Type == "webhook" && s.Webhook.URL == "":
			bad("%s: webhook.url is required", where)
		case s.Type == "webhook" && s.Webhook.Payload == "slack" && s.Format == "ocsf":
			bad("%s: webhook.payload slack is made from native records: leave format native", where)
		case s.Type == "splunk_hec" && (s.SplunkHEC.URL == "" || s.SplunkHEC.TokenFile == ""):
			bad("%s: splunk_hec.url and splunk_hec.token_file are required", where)
		case s.Type == "syslog" && s.Syslog.Address == "":
			bad("%s: syslog.address is required", where)
		}
	}
	return errors.Join(errs...)
}

// newRecorder builds the audit recorder: a spool per sink under the spool
// directory, each delivered to its sink.
func newRecorder(cfg Config, stdout io.Writer, rdb redis.UniversalClient, log *slog.Logger) (*audit.Recorder, error) {
	a := cfg.Audit
	spoolDir := cmp.Or(a.SpoolDir, filepath.Join(cfg.StateDir, "audit"))
	var key []byte
	if a.ChainKeyFile != "" {
		b, err := os.ReadFile(a.ChainKeyFile)
		if err != nil {
			return nil, fmt.Errorf("audit.chain_key_file: %w", err)
		}
		if key = bytes.TrimSpace(b); len(key) < 16 {
			return nil, errors.New("audit.chain_key_file: the key must be at least 16 bytes")
		}
	}
	var sinks []audit.SinkConfig
	var errs []error
	for _, s := range a.sinks(cfg.auditStdout()) {
		sink, err := newAuditSink(s, stdout, rdb)
		if err != nil {
			errs = append(errs, fmt.Errorf("audit sink %s: %w", s.Name, err))
			continue
		}
		encoder := audit.AppendNative
		if s.Format == "ocsf" {
			encoder = ocsf.Append
		}
		sc := audit.SinkConfig{
			Name: s.Name, Sink: sink, Encoder: encoder, Mode: audit.Mode(s.Mode), Types: s.Types,
			SpoolDir: filepath.Join(spoolDir, s.Name), Sync: audit.SyncPolicy(cmp.Or(s.Sync, a.Sync)),
			SyncEvery: cmp.Or(s.SyncEvery, a.SyncEvery), MaxSpoolBytes: s.MaxSpoolBytes, ChainKey: key,
		}
		if s.Type == "webhook" && s.Webhook.Payload == "slack" {
			// One message per delivery: a failed POST is retried alone,
			// and no message already sent is sent twice.
			sc.BatchSize = 1
		}
		sinks = append(sinks, sc)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return audit.New(audit.Config{Sinks: sinks, Logger: log})
}

// newAuditSink builds the sink of one configured destination.
func newAuditSink(s AuditSinkConfig, stdout io.Writer, rdb redis.UniversalClient) (audit.Sink, error) {
	switch s.Type {
	case "stdout":
		return file.NewWriter(stdout), nil
	case "file":
		return file.New(file.Config{Path: s.File.Path, MaxBytes: s.File.MaxBytes, MaxAge: s.File.MaxAge, Retention: s.File.Retention})
	case "webhook":
		w := s.Webhook
		return webhook.New(webhook.Config{
			URL: w.URL, TokenFile: w.TokenFile, CAFile: w.CAFile, Timeout: w.Timeout,
			SecretFile: w.SecretFile, Payload: w.Payload, ApprovalURL: w.ApprovalURL,
		})
	case "splunk_hec":
		h := s.SplunkHEC
		return hec.New(hec.Config{
			URL: h.URL, TokenFile: h.TokenFile, Channel: h.Channel, DisableAck: h.Ack != nil && !*h.Ack,
			Index: h.Index, Sourcetype: h.Sourcetype, Source: h.Source, CAFile: h.CAFile, Timeout: h.Timeout, AckTimeout: h.AckTimeout,
		})
	case "syslog":
		y := s.Syslog
		c := syslog.Config{Address: y.Address, AppName: y.AppName, Hostname: y.Hostname, Facility: y.Facility, StructuredDataID: y.SDID}
		if y.TLS {
			c.TLS = &tls.Config{MinVersion: tls.VersionTLS12}
			if y.CAFile != "" {
				pem, err := os.ReadFile(y.CAFile)
				if err != nil {
					return nil, fmt.Errorf("syslog.ca_file: %w", err)
				}
				c.TLS.RootCAs = x509.NewCertPool()
				if !c.TLS.RootCAs.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("syslog.ca_file %s holds no PEM certificate", y.CAFile)
				}
			}
		}
		return syslog.New(c)
	case "redis_stream":
		r := s.RedisStream
		c := redisstream.Config{Stream: r.Stream, MaxLen: r.MaxLen}
		if r.Address != "" {
			c.Addr, c.Username, c.PasswordFile, c.DB = r.Address, r.Username, r.PasswordFile, r.DB
		} else {
			c.Client = rdb
		}
		return redisstream.New(c)
	}
	return nil, fmt.Errorf("type %q: want one of %v", s.Type, auditSinkTypes)
}

// auditCloseTimeout is how long a stopping jitproxy waits for its sinks to
// take what is spooled; the rest is delivered after the next start.
const auditCloseTimeout = 5 * time.Second

// auditCommand runs `jitproxy audit verify [--key-file F] FILE...`: the
// files are one sink's records in order (rotated files oldest first), and
// the first break of the chain is reported.
func auditCommand(args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return errors.New("usage: jitproxy audit verify [--key-file F] FILE...")
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	keyFile := fs.String("key-file", "", "the HMAC key of the chain (audit.chain_key_file); none for a plain SHA-256 chain")
	files, err := parseInterspersed(fs, args[1:])
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return errors.New("audit verify: name the files of one sink, oldest first")
	}
	var key []byte
	if *keyFile != "" {
		b, err := os.ReadFile(*keyFile)
		if err != nil {
			return err
		}
		key = bytes.TrimSpace(b)
	}
	readers := make([]io.Reader, 0, len(files))
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			return err
		}
		defer f.Close()
		readers = append(readers, f)
	}
	res, err := audit.Verify(io.MultiReader(readers...), key)
	if err != nil {
		return fmt.Errorf("audit verify: the chain breaks at %w (after %d good records)", err, res.Records)
	}
	fmt.Fprintf(stdout, "ok: %d records, seq %d to %d, last hash %s\n", res.Records, res.FirstSeq, res.LastSeq, res.LastHash)
	return nil
}
