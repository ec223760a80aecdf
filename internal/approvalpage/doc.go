// Package approvalpage serves the approval page on the admin listener:
// the pending grant requests a person may approve, with who asked, for
// what, why, under which access policy and for how long; approve and deny
// buttons with a comment; and the recent decisions the person may see.
//
// People sign in with OpenID Connect (authorization code flow with PKCE,
// state and nonce). A verified ID token becomes a jit.Principal through an
// Authenticator; approvals and denials go through the same jit.Service
// methods as the admin API, so the same approver and self-approval checks
// apply and the same audit events are recorded, with the signed-in person
// as the actor.
//
// Sessions and pending logins live in Redis under digests of random IDs,
// with TTLs, so every replica behind one address agrees on them. The
// cookies hold only the random IDs. Whether the cookies are Secure (and
// carry the __Host- prefix) follows the scheme of the configured redirect
// URL: jitproxy's admin listener speaks plain HTTP, so a page served to
// people over the network sits behind a TLS-terminating proxy and its
// redirect URL is https.
//
// Every answer carries a strict Content-Security-Policy (no script at
// all, style from the page's own origin, forms posting only to it, no
// framing). Every form is protected by a per-session token and by
// net/http's CrossOriginProtection (Sec-Fetch-Site and Origin).
package approvalpage
