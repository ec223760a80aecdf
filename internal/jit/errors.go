package jit

import "errors"

// Errors callers branch on. Service methods wrap them with a message that is
// safe to show to the principal who made the call: it names policies, states
// and limits, never a secret.
var (
	// ErrNotFound: no such grant, session or policy (or not visible to the caller).
	ErrNotFound = errors.New("not found")
	// ErrUnauthenticated: the credential is missing, unknown or expired.
	ErrUnauthenticated = errors.New("unauthenticated")
	// ErrForbidden: the principal may not do this.
	ErrForbidden = errors.New("forbidden")
	// ErrInvalid: the request is malformed or outside the policy's limits.
	ErrInvalid = errors.New("invalid request")
	// ErrConflict: the grant is not in a state that allows the operation.
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the state store (Redis) could not be reached or
	// failed; nothing was decided. Try again.
	ErrUnavailable = errors.New("state store unavailable")
	// ErrAuthUnavailable: what verifies the credential (an OIDC provider,
	// a cluster's TokenReview) could not be reached or failed; the caller
	// was neither accepted nor refused. Try again.
	ErrAuthUnavailable = errors.New("authentication unavailable")
)
