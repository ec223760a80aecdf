package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/elazarl/goproxy"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
	"github.com/jitproxy/jitproxy/internal/audit/sink/file"
)

// goproxyAuditEnv, set to a directory, makes the goproxy process record
// every request as jitproxy does with its default audit configuration: a
// request.decided event spooled before the request goes upstream (refused
// with 503 if it cannot be), and a request event with the outcome after,
// through internal/audit to a file sink, with the spool under the
// directory and the file at audit.jsonl in it. It is the floor of what a
// MITM proxy that keeps jitproxy's audit guarantees costs: goproxy's
// forwarding and jitproxy's audit, with no classification, decision,
// grant or credential.
const goproxyAuditEnv = "BENCH_E2E_GOPROXY_AUDIT_DIR"

// auditGoproxy adds the recording of goproxyAuditEnv to p, with a file
// sink under dir. The returned function closes the recorder.
func auditGoproxy(p *goproxy.ProxyHttpServer, dir string) (func() error, error) {
	sink, err := file.New(file.Config{Path: filepath.Join(dir, "audit.jsonl")})
	if err != nil {
		return nil, err
	}
	rec, err := audit.New(audit.Config{Sinks: []audit.SinkConfig{{
		Name: "file", Sink: sink, Encoder: audit.AppendNative, SpoolDir: filepath.Join(dir, "spool"),
	}}})
	if err != nil {
		return nil, err
	}
	type exchange struct {
		event audit.Event
		start time.Time
	}
	p.OnRequest().DoFunc(func(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
		x := &exchange{event: benchDecision(r), start: time.Now()}
		decided := x.event
		decided.Type = audit.TypeRequestDecided
		if err := rec.Record(context.WithoutCancel(r.Context()), decided); err != nil {
			return r, goproxy.NewResponse(r, goproxy.ContentTypeText, http.StatusServiceUnavailable, "not recorded")
		}
		ctx.UserData = x
		return r, nil
	})
	p.OnResponse().DoFunc(func(resp *http.Response, ctx *goproxy.ProxyCtx) *http.Response {
		x, ok := ctx.UserData.(*exchange)
		if !ok || resp == nil {
			return resp
		}
		x.event.Credential = &audit.Credential{Provider: "kubernetes", Target: "demo", Subject: "system:serviceaccount:demo:pod-reader", ExpiresAt: x.event.Grant.ExpiresAt}
		x.event.Outcome = &audit.Outcome{Status: resp.StatusCode, Bytes: max(0, resp.ContentLength)}
		x.event.DurationMS = float64(time.Since(x.start)) / float64(time.Millisecond)
		if err := rec.Record(context.Background(), x.event); err != nil {
			fmt.Fprintln(os.Stderr, "goproxy+audit: record:", err)
		}
		return resp
	})
	return func() error { return rec.Close(10 * time.Second) }, nil
}

// benchDecision is the event jitproxy records for the benchmark's request
// (GET the pods of namespace demo, allowed by a pod-reader grant, with a
// TokenRequest credential): the same members with values of the same
// lengths (the credential is added to the outcome), so that both proxies
// encode, seal and write records of about the same size (the harness
// prints both sizes).
func benchDecision(r *http.Request) audit.Event {
	expires := time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond)
	return audit.Event{
		Type:      audit.TypeRequest,
		RequestID: newBenchID(),
		Caller: &access.Caller{
			Session: "s-" + newBenchID(), Agent: "bench", User: "dev", Groups: []string{"developers"},
			AuthMethod: "proxy-basic", SourceAddr: "127.0.0.1:54321",
		},
		Action: &access.Action{
			Kind: access.KindKubernetes, Target: "demo", Method: r.Method, Path: r.URL.Path,
			Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"},
		},
		Decision: &audit.Decision{Allowed: true, Reasons: []string{"permitted by grant g-0123456789abcdef"}},
		Grant:    &audit.Grant{ID: "g-0123456789abcdef", Policy: "pod-reader", Version: "0123456789ab", Namespace: "demo", ExpiresAt: expires},
	}
}

// newBenchID is a random ID as long as jitproxy's request IDs.
func newBenchID() string {
	var b [8]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// auditFileSize returns the number of records in the audit file at path
// and in the files the file sink rotated aside (NAME-TIME.EXT), and their
// mean size in bytes.
func auditFileSize(path string) (records int, mean float64, err error) {
	ext := filepath.Ext(path)
	rotated, err := filepath.Glob(strings.TrimSuffix(path, ext) + "-*" + ext)
	if err != nil {
		return 0, 0, err
	}
	var total int
	for _, p := range append(rotated, path) {
		n, bytes, err := countLines(p)
		if err != nil {
			return 0, 0, err
		}
		records += n
		total += bytes
	}
	if records > 0 {
		mean = float64(total) / float64(records)
	}
	return records, mean, nil
}

// countLines returns the number of lines in the file at path and its size.
func countLines(path string) (lines, size int, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		lines++
		size += len(sc.Bytes()) + 1
	}
	return lines, size, sc.Err()
}
