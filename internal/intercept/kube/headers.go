package kube

import (
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// forwardedHeaders are the only request headers that reach kube-apiserver,
// besides the Authorization jitproxy sets itself: content negotiation,
// the protocols of upgraded streams (exec, attach, port-forward), kubectl's
// own request annotations, conditional discovery requests and tracing. Every
// other header an agent sends is dropped, whatever its name: identity
// headers that some upstreams trust (Impersonate-*, X-Remote-*,
// X-Forwarded-*, X-Auth-Request-*), cookies and headers nobody has thought
// of yet. Values of the stream-protocol headers are filtered further by
// allowedSubprotocol, and Upgrade by upgradeTypes.
var forwardedHeaders = map[string]bool{
	"Accept":                    true,
	"Accept-Encoding":           true,
	"Content-Type":              true,
	"User-Agent":                true,
	"Kubectl-Command":           true,
	"Kubectl-Session":           true,
	"If-None-Match":             true,
	"If-Modified-Since":         true,
	"Traceparent":               true,
	"Tracestate":                true,
	"Te":                        true, // "trailers", set by httputil.ReverseProxy
	"Connection":                true, // "Upgrade", set by httputil.ReverseProxy for upgrades only
	"Upgrade":                   true,
	"X-Stream-Protocol-Version": true,
	"Sec-Websocket-Key":         true,
	"Sec-Websocket-Version":     true,
	"Sec-Websocket-Extensions":  true,
	"Sec-Websocket-Protocol":    true,
}

// ForwardedHeaders returns the names of the request headers that may reach
// the upstream, in canonical form, for tests and documentation.
func ForwardedHeaders() []string {
	out := make([]string, 0, len(forwardedHeaders))
	for k := range forwardedHeaders {
		out = append(out, k)
	}
	return out
}

// upgradeTypes are the protocols kube-apiserver upgrades to (websocket for
// current kubectl, SPDY for older clients), lower-cased.
var upgradeTypes = map[string]bool{"websocket": true, "spdy/3.1": true}

// subprotocolPattern matches the stream subprotocols of exec, attach and
// port-forward, in websocket (Sec-WebSocket-Protocol) and SPDY
// (X-Stream-Protocol-Version) form. The bearer-token subprotocol
// (base64url.bearer.authorization.k8s.io.TOKEN), in any case, does not match.
var subprotocolPattern = regexp.MustCompile(`^((v[0-9]+\.)?(base64\.)?channel\.k8s\.io|(v[0-9]+\.)?portforward\.k8s\.io|SPDY/3\.1\+portforward\.k8s\.io)$`)

func allowedSubprotocol(p string) bool { return subprotocolPattern.MatchString(p) }

// OutboundHeader returns the headers of an outbound request that may reach
// kube-apiserver: the allow-list above, with stream subprotocols filtered
// and upgrades other than websocket and SPDY dropped. It never returns a
// credential; Authorize adds jitproxy's.
func (*Protocol) OutboundHeader(in http.Header) http.Header {
	// Sized for what can be kept and the Authorization Authorize adds: a
	// map sized for the whole allow-list is several times larger than a
	// request's few headers need.
	out := make(http.Header, min(len(in), len(forwardedHeaders))+1)
	for k, vs := range in {
		if forwardedHeaders[k] {
			out[k] = vs
		}
	}
	if up := out.Get("Upgrade"); up != "" && !upgradeTypes[strings.ToLower(up)] {
		out.Del("Upgrade")
		out.Del("Connection")
	}
	for _, k := range []string{"Sec-Websocket-Protocol", "X-Stream-Protocol-Version"} {
		vs, ok := out[k]
		if !ok {
			continue
		}
		var keep []string
		for _, v := range vs {
			for p := range strings.SplitSeq(v, ",") {
				if p = strings.TrimSpace(p); allowedSubprotocol(p) {
					keep = append(keep, p)
				}
			}
		}
		delete(out, k)
		switch {
		case len(keep) == 0:
		case k == "Sec-Websocket-Protocol":
			out.Set(k, strings.Join(keep, ", "))
		default:
			out[k] = keep // SPDY clients send one header per version
		}
	}
	return out
}

// credentialParams are query parameters that carry credentials to some
// server or other (OAuth access tokens, API keys, AWS presigned URLs).
// kube-apiserver reads none of them; a request that carries one is refused
// rather than forwarded, so that no upstream or intermediary ever sees a
// credential the agent chose.
var credentialParams = map[string]bool{
	"access_token": true, "id_token": true, "token": true, "bearer": true,
	"authorization": true, "auth": true, "api_key": true, "apikey": true,
	"password": true, "client_secret": true,
	"x-amz-credential": true, "x-amz-signature": true, "x-amz-security-token": true,
}

// credentialInQuery returns the name of the first credential parameter in
// q, or "".
func credentialInQuery(q url.Values) string {
	for k := range q {
		if credentialParams[strings.ToLower(k)] {
			return k
		}
	}
	return ""
}
