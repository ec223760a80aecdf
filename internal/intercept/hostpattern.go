package intercept

import (
	"errors"
	"net"
	"slices"
	"strings"
)

// hostPattern is a host name, in which a label "*" matches any one label,
// and a port: "*.s3.amazonaws.com:443".
type hostPattern struct {
	labels []string
	port   string
}

// newHostPattern parses a target host; without a port, the port is 443.
// A "*" must be a whole label, and a pattern keeps at least two labels
// after its last "*" ("*.com" would match far too much).
func newHostPattern(h string) (hostPattern, error) {
	hp, err := normalizeHostPort(h)
	if err != nil {
		return hostPattern{}, err
	}
	host, port, _ := net.SplitHostPort(hp)
	p := hostPattern{labels: strings.Split(host, "."), port: port}
	last := -1
	for i, l := range p.labels {
		switch {
		case l == "":
			return hostPattern{}, errors.New("empty label")
		case l == "*":
			last = i
		case strings.Contains(l, "*"):
			return hostPattern{}, errors.New(`"*" must be a whole label, as in *.example.com`)
		}
	}
	if last >= 0 && len(p.labels)-last-1 < 2 {
		return hostPattern{}, errors.New(`a pattern needs at least two labels after its last "*"`)
	}
	return p, nil
}

func (p hostPattern) wild() bool { return slices.Contains(p.labels, "*") }

func (p hostPattern) String() string {
	return net.JoinHostPort(strings.Join(p.labels, "."), p.port)
}

// matches reports whether the normalized hostport matches p.
func (p hostPattern) matches(hostport string) bool {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil || port != p.port {
		return false
	}
	labels := strings.Split(host, ".")
	if len(labels) != len(p.labels) {
		return false
	}
	for i, l := range labels {
		if l == "" || (p.labels[i] != "*" && p.labels[i] != l) {
			return false
		}
	}
	return true
}

// overlaps reports whether some host matches both p and q.
func (p hostPattern) overlaps(q hostPattern) bool {
	if p.port != q.port || len(p.labels) != len(q.labels) {
		return false
	}
	for i := range p.labels {
		if p.labels[i] != "*" && q.labels[i] != "*" && p.labels[i] != q.labels[i] {
			return false
		}
	}
	return true
}
