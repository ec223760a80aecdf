package audit

import (
	"testing"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
)

// requestEvent is a proxied request's last event as jitproxy records it:
// every object a request event has.
func requestEvent() Event {
	t := time.Date(2026, 11, 29, 16, 47, 4, 123456789, time.UTC)
	return Event{
		Version: SchemaVersion, ID: "0123456789abcdef0123456789abcdef", Time: t, Type: TypeRequest,
		RequestID: "0123456789abcdef",
		Caller:    &access.Caller{Session: "s-7f3a", Agent: "claude-code", User: "alice@example.com", Groups: []string{"sre", "oncall"}, AuthMethod: "proxy-basic", SourceAddr: "127.0.0.1:51234"},
		Action: &access.Action{Kind: access.KindKubernetes, Target: "prod", Method: "GET", Path: "/api/v1/namespaces/demo/pods",
			Kubernetes: &access.KubernetesAction{Verb: "list", ResourceRequest: true, APIVersion: "v1", Resource: "pods", Namespace: "demo"}},
		Decision:   &Decision{Allowed: true, Reasons: []string{"permitted by grant g-abcdefghijklmnop"}},
		Grant:      &Grant{ID: "g-abcdefghijklmnop", Policy: "pod-reader", Version: "a1b2c3d4e5f6", Namespace: "demo", ExpiresAt: t.Add(time.Hour)},
		Credential: &Credential{Provider: "tokenrequest", Target: "prod", Subject: "system:serviceaccount:demo:reader", ExpiresAt: t.Add(time.Hour)},
		Outcome:    &Outcome{Status: 200, Bytes: 1234},
		DurationMS: 1.734,
	}
}

// BenchmarkEncodeNative measures encoding one request event in the native
// format, and sealing it into the chain.
func BenchmarkEncodeNative(b *testing.B) {
	e := requestEvent()
	c := Chain{Seq: 12345, Prev: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := EncodeNative(e, c); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("encode+seal", func(b *testing.B) {
		ch := NewChainer(nil)
		b.ReportAllocs()
		for b.Loop() {
			data, err := EncodeNative(e, c)
			if err != nil {
				b.Fatal(err)
			}
			if _, _, err := ch.Seal(c.Prev, data); err != nil {
				b.Fatal(err)
			}
		}
	})
}
