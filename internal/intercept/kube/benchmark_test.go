package kube

import (
	"bufio"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// BenchmarkClassify classifies requests as the pipeline does: Classify,
// then, for the writes whose objects policies see, DecodeBody.
func BenchmarkClassify(b *testing.B) {
	const deployment = `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","namespace":"demo"},` +
		`"spec":{"replicas":2,"selector":{"matchLabels":{"app":"web"}},"template":{"metadata":{"labels":{"app":"web"}},` +
		`"spec":{"containers":[{"name":"app","image":"registry.k8s.io/pause:3.10","ports":[{"containerPort":8080}]}]}}}}`
	tests := []struct {
		name, method, target, ctype, body string
	}{
		{name: "list", method: "GET", target: "/api/v1/namespaces/demo/pods?limit=500"},
		{name: "get", method: "GET", target: "/api/v1/namespaces/demo/pods/web"},
		{name: "create", method: "POST", target: "/apis/apps/v1/namespaces/demo/deployments?fieldManager=kubectl-create&fieldValidation=Strict",
			ctype: "application/json", body: deployment},
		{name: "patch", method: "PATCH", target: "/apis/apps/v1/namespaces/demo/deployments/web?fieldManager=kubectl-patch",
			ctype: "application/strategic-merge-patch+json", body: `{"spec":{"replicas":3}}`},
	}
	p := New()
	for _, tt := range tests {
		b.Run(tt.name, func(b *testing.B) {
			r := serverRequest(b, tt.method, tt.target, tt.ctype, tt.body)
			raw := []byte(tt.body)
			body := func() ([]byte, error) { return raw, nil }
			b.ReportAllocs()
			for b.Loop() {
				a, err := p.Classify(r, body)
				if err != nil {
					b.Fatal(err)
				}
				if p.NeedsBody(a) {
					if _, err := p.DecodeBody(a, tt.ctype, raw); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}

// serverRequest returns the request kubectl would send, as net/http's
// server reads it.
func serverRequest(b *testing.B, method, target, ctype, body string) *http.Request {
	b.Helper()
	var s strings.Builder
	s.WriteString(method + " " + target + " HTTP/1.1\r\nHost: kubernetes.demo\r\n" +
		"User-Agent: kubectl/v1.32.0 (linux/amd64) kubernetes/abcdef\r\nAccept: application/json\r\n" +
		"Kubectl-Command: kubectl\r\nKubectl-Session: 0b0e7e0c-0000-4000-8000-000000000000\r\n" +
		"Authorization: Bearer placeholder\r\n")
	if body != "" {
		s.WriteString("Content-Type: " + ctype + "\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n")
	}
	s.WriteString("\r\n" + body)
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(s.String())))
	if err != nil {
		b.Fatal(err)
	}
	return r
}
