package intercept

import "testing"

func TestAddressedBy(t *testing.T) {
	tests := []struct {
		name     string
		hostport string // the tunnel's, normalized
		host     string // the request's Host
		want     bool
	}{
		{name: "as CONNECTed", hostport: "kubernetes.demo:443", host: "kubernetes.demo:443", want: true},
		{name: "default port left out", hostport: "kubernetes.demo:443", host: "kubernetes.demo", want: true},
		{name: "other port", hostport: "kubernetes.demo:6443", host: "kubernetes.demo:6443", want: true},
		{name: "other port left out", hostport: "kubernetes.demo:6443", host: "kubernetes.demo", want: false},
		{name: "case", hostport: "kubernetes.demo:443", host: "Kubernetes.DEMO", want: true},
		{name: "IPv6", hostport: "[::1]:443", host: "[::1]", want: true},
		{name: "IPv6 with port", hostport: "[::1]:443", host: "[::1]:443", want: true},
		{name: "other host", hostport: "kubernetes.demo:443", host: "evil.demo", want: false},
		{name: "suffix", hostport: "kubernetes.demo:443", host: "kubernetes.demo:4433", want: false},
		{name: "empty", hostport: "kubernetes.demo:443", host: "", want: false},
		{name: "userinfo", hostport: "kubernetes.demo:443", host: "x@kubernetes.demo", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (&tunnel{hostport: tt.hostport}).addressedBy(tt.host); got != tt.want {
				t.Errorf("tunnel to %s addressedBy(%q) = %v, want %v", tt.hostport, tt.host, got, tt.want)
			}
		})
	}
}

// FuzzAddressedBy: the fast paths of addressedBy agree with normalizing
// the request's Host.
func FuzzAddressedBy(f *testing.F) {
	for _, s := range [][2]string{{"kubernetes.demo:443", "kubernetes.demo"}, {"a:443", "A"}, {"[::1]:443", "[::1]"}, {"h:8443", "h:8443"}} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, connect, host string) {
		hostport, err := normalizeHostPort(connect)
		if err != nil {
			return
		}
		hp, err := normalizeHostPort(host)
		want := err == nil && hp == hostport
		if got := (&tunnel{hostport: hostport}).addressedBy(host); got != want {
			t.Errorf("tunnel to %s addressedBy(%q) = %v, normalized %q", hostport, host, got, hp)
		}
	})
}
