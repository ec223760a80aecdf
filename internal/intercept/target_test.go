package intercept

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/intercept/kube"
)

func TestHostPatterns(t *testing.T) {
	s3 := &Target{Name: "s3"}
	exact := &Target{Name: "exact"}
	sts := &Target{Name: "sts"}
	ts := &targets{byHost: map[string]*Target{"special.s3.amazonaws.com:443": exact}}
	for _, p := range []struct {
		host string
		t    *Target
	}{{"*.s3.amazonaws.com", s3}, {"s3.*.amazonaws.com", s3}, {"sts.*.amazonaws.com:8443", sts}} {
		hp, err := newHostPattern(p.host)
		if err != nil {
			t.Fatal(err)
		}
		ts.patterns = append(ts.patterns, targetPattern{pattern: hp, target: p.t})
	}
	tests := []struct {
		host string
		want string // target name; "" for none
	}{
		{"bucket.s3.amazonaws.com", "s3"},
		{"BUCKET.S3.amazonaws.com:443", "s3"},
		{"special.s3.amazonaws.com", "exact"}, // a host named exactly wins
		{"s3.eu-west-1.amazonaws.com", "s3"},
		{"s3.amazonaws.com", ""},                 // "*" is one label, never none
		{"a.b.s3.amazonaws.com", ""},             // nor two
		{"bucket.s3.amazonaws.com.evil.com", ""}, // the whole name matches or nothing
		{"bucket.s3.amazonaws.com:8443", ""},     // the port is part of the host
		{"sts.us-east-1.amazonaws.com:8443", "sts"},
		{"sts.us-east-1.amazonaws.com", ""},
		{".s3.amazonaws.com", ""},
		{"", ""},
	}
	for _, tt := range tests {
		got, _ := ts.lookup(tt.host)
		name := ""
		if got != nil {
			name = got.Name
		}
		if name != tt.want {
			t.Errorf("lookup(%q) = %q, want %q", tt.host, name, tt.want)
		}
	}
}

func TestHostPatternValidation(t *testing.T) {
	for _, h := range []string{"*.com", "*", "s3.*", "a*.example.com", "*.*.com", "a..example.com", "x.example.com/path"} {
		if _, err := newHostPattern(h); err == nil {
			t.Errorf("newHostPattern(%q) = nil error, want a refusal", h)
		}
	}
	for _, h := range []string{"*.s3.amazonaws.com", "s3.*.amazonaws.com", "*.*.s3.amazonaws.com", "kubernetes.demo:6443"} {
		if _, err := newHostPattern(h); err != nil {
			t.Errorf("newHostPattern(%q) = %v", h, err)
		}
	}
}

func TestOverlappingTargetsAreRefused(t *testing.T) {
	u, _ := url.Parse("https://upstream.example")
	target := func(name string, hosts ...string) *Target {
		return &Target{Name: name, Hosts: hosts, Upstream: u, Transport: http.DefaultTransport, Protocol: kube.New()}
	}
	tests := []struct {
		name    string
		targets []*Target
		wantErr string
	}{
		{"patterns of two targets overlap", []*Target{target("a", "*.s3.amazonaws.com"), target("b", "bucket.*.amazonaws.com")}, "match the same hosts"},
		{"one host in two targets", []*Target{target("a", "x.example.com"), target("b", "X.example.com:443")}, "belongs to targets"},
		{"an exact host inside another's pattern is fine", []*Target{target("a", "*.s3.amazonaws.com"), target("b", "special.s3.amazonaws.com")}, ""},
		{"one target's own patterns may overlap", []*Target{target("a", "*.s3.amazonaws.com", "b.*.amazonaws.com")}, ""},
		{"different ports do not overlap", []*Target{target("a", "*.example.com"), target("b", "*.example.com:8443")}, ""},
		{"no upstream routes to the requested host", []*Target{{Name: "aws", Hosts: []string{"*.s3.amazonaws.com"}, Transport: http.DefaultTransport, Protocol: kube.New()}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := newTargets(tt.targets)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("newTargets() = %v, want %q", err, tt.wantErr)
			}
		})
	}
}

// TestRequestedHostRouting: a target without a fixed upstream sends each
// request to the host the agent addressed, with the Host header of that
// host, over TLS verified for that name.
func TestRequestedHostRouting(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	h := newHarness(t, harnessOptions{
		handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			seen = append(seen, r.Host+" "+r.URL.Path)
			mu.Unlock()
		}),
		config: func(c *Config) {
			tr := c.Targets[0].Transport.(*http.Transport).Clone()
			upstream := c.Targets[0].Upstream.Host
			var dialled []string
			tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
				dialled = append(dialled, addr)
				if addr != "a.example.com:443" && addr != "b.example.com:443" {
					t.Errorf("dialled %s", addr)
				}
				return (&net.Dialer{Timeout: time.Second}).DialContext(ctx, network, upstream)
			}
			// httptest's certificate names example.com: verify it as that.
			tr.TLSClientConfig = tr.TLSClientConfig.Clone()
			tr.TLSClientConfig.ServerName = "example.com"
			c.Targets[0].Transport, c.Targets[0].Upstream = tr, nil
			c.Targets[0].Hosts = []string{"*.example.com"}
		},
	})
	h.sessions.setGrants(podReaderGrant(time.Hour))
	for _, host := range []string{"a.example.com", "b.example.com"} {
		resp, err := h.agent().Get("https://" + host + "/api/v1/namespaces/demo/pods")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET via %s = %d", host, resp.StatusCode)
		}
	}
	want := []string{"a.example.com /api/v1/namespaces/demo/pods", "b.example.com /api/v1/namespaces/demo/pods"}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, seen); diff != "" {
		t.Errorf("upstream saw (-want +got):\n%s", diff)
	}
}
