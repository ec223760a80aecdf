// Package intercept is jitproxy's data plane: the listeners agents talk to,
// and the pipeline every request goes through.
//
// The forward proxy (agents set HTTPS_PROXY to it) authenticates the agent
// session on CONNECT, refuses any host that is not a configured target,
// and terminates TLS for target hosts with leaf certificates from the
// jitproxy CA. Each request inside the tunnel then goes through the
// pipeline:
//
//	classify (target protocol) → active grants (jit) → decide (authz)
//	  → credential (broker) → strip the agent's credentials, inject the
//	  minted one → upstream, TLS verified → audit
//
// goproxy parses CONNECT and hands over the tunnel; everything after that
// is net/http and httputil.ReverseProxy, so a panic in one connection is
// recovered by net/http, responses stream, and upgrades work. goproxy's
// own upstream transport and dialers, which skip TLS verification and
// follow the environment's proxy settings, are replaced by ones that refuse
// to dial: jitproxy never tunnels a CONNECT it does not intercept.
//
// What is specific to a kind of target (Kubernetes, AWS) lives behind the
// Protocol interface, in child packages.
package intercept
