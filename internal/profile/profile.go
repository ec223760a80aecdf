// Package profile records what the requests under a learning grant did, and
// turns one recording into least-privilege artefacts: an access policy, a
// Kubernetes Role or ClusterRole, an IAM policy document, Rego tests.
//
// A profile lives in Redis under PREFIX profile:GRANTID, a hash with three
// fields per distinct action: "c:KEY" (count), "f:KEY" (first use, Unix
// ms) and "l:KEY" (last use, Unix ms), where KEY is the action's canonical
// key (Key). The hash expires Retention after the grant's end, so that a
// recording can be exported after its window closed.
//
// Recording is best effort and never decides anything: the request was
// already allowed (under the boundary the learning grant's policy sets)
// when it is recorded. If Redis fails, counts and times of that flush are
// lost (and logged); no request is refused or allowed because of it.
package profile

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
)

// Retention is how long a profile stays in Redis after its grant's end.
const Retention = 7 * 24 * time.Hour

// Use is one distinct action seen under a learning grant, with how often
// and when. Kind tells which fields apply: Kubernetes (Verb, APIGroup,
// Resource, Subresource, Namespace, Name; Path for a non-resource URL) or
// AWS (Action, Region, Resources).
type Use struct {
	Kind        string   `json:"kind"`
	Verb        string   `json:"verb,omitempty"`
	APIGroup    string   `json:"api_group,omitempty"`
	Resource    string   `json:"resource,omitempty"`
	Subresource string   `json:"subresource,omitempty"`
	Namespace   string   `json:"namespace,omitempty"`
	Name        string   `json:"name,omitempty"`
	Path        string   `json:"path,omitempty"` // non-resource URL
	Action      string   `json:"action,omitempty"`
	Region      string   `json:"region,omitempty"`
	Resources   []string `json:"resources,omitempty"`

	Count int64     `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
}

// Profile is the recording of one learning grant: its uses, sorted by
// their keys.
type Profile struct {
	Grant string `json:"grant"`
	Uses  []Use  `json:"uses"`
}

// UseOf returns the Use that a's request is (without count and times),
// and false for an action of no known kind.
func UseOf(a *access.Action) (Use, bool) {
	switch {
	case a.Kubernetes != nil:
		k := a.Kubernetes
		u := Use{Kind: access.KindKubernetes, Verb: k.Verb}
		if !k.ResourceRequest {
			u.Path = a.Path
			return u, true
		}
		u.APIGroup, u.Resource, u.Subresource, u.Namespace, u.Name = k.APIGroup, k.Resource, k.Subresource, k.Namespace, k.Name
		return u, true
	case a.AWS != nil:
		return Use{Kind: access.KindAWS, Action: a.AWS.Action, Region: a.AWS.Region, Resources: a.AWS.Resources}, true
	}
	return Use{}, false
}

// Key returns u's canonical key: its kind and fields, each escaped, space
// separated. Two uses have the same key exactly when they are the same
// action; ParseKey reverses it.
func (u Use) Key() string {
	var f []string
	switch u.Kind {
	case access.KindKubernetes:
		f = []string{"k8s", u.Verb, u.APIGroup, u.Resource, u.Subresource, u.Namespace, u.Name, u.Path}
	case access.KindAWS:
		f = append([]string{"aws", u.Action, u.Region}, u.Resources...)
	default:
		return ""
	}
	for i, s := range f {
		f[i] = escape(s)
	}
	return strings.Join(f, " ")
}

// escape makes s safe to stand as one field of a key: never empty, never
// with a space.
func escape(s string) string {
	switch s {
	case "":
		return "-"
	case "-":
		return "%2D"
	}
	return url.PathEscape(s)
}

func unescape(s string) (string, error) {
	if s == "-" {
		return "", nil
	}
	return url.PathUnescape(s)
}

var errKey = errors.New("malformed profile key")

// ParseKey returns the Use (without count and times) whose key is k. A
// key that Key could not have returned is an error.
func ParseKey(k string) (Use, error) {
	raw := strings.Split(k, " ")
	f := make([]string, len(raw))
	for i, s := range raw {
		if s == "" {
			return Use{}, errKey
		}
		var err error
		if f[i], err = unescape(s); err != nil {
			return Use{}, fmt.Errorf("%w: %w", errKey, err)
		}
	}
	var u Use
	switch {
	case raw[0] == "k8s" && len(f) == 8:
		u = Use{Kind: access.KindKubernetes, Verb: f[1], APIGroup: f[2], Resource: f[3], Subresource: f[4], Namespace: f[5], Name: f[6], Path: f[7]}
	case raw[0] == "aws" && len(f) >= 3:
		u = Use{Kind: access.KindAWS, Action: f[1], Region: f[2]}
		if len(f) > 3 {
			u.Resources = f[3:]
		}
	default:
		return Use{}, errKey
	}
	if u.Key() != k {
		return Use{}, errKey // not canonical
	}
	return u, nil
}
