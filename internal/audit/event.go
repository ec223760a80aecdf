// Package audit defines jitproxy's audit events and writes them to sinks.
//
// Audit is not logging: every request decision, grant state change, session
// change and credential event becomes exactly one Event, with a versioned
// schema that a SIEM can rely on. An Event never carries a secret: secrets are
// secret.Value fields elsewhere and no Event field can hold one.
package audit

import (
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
)

// SchemaVersion is the value of Event.Version for this schema. It changes
// only when a field changes meaning or is removed; new fields keep it.
const SchemaVersion = "jitproxy.audit/v1"

// Event types.
const (
	// TypeRequest is a proxied request, recorded when its response ends.
	TypeRequest = "request"
	// TypeRequestDecided is an allowed request's decision, recorded before
	// a credential is minted for it or it is forwarded: when an enforced
	// sink cannot take it, the request is refused.
	TypeRequestDecided = "request.decided"
	TypeSessionCreated = "session.created"
	TypeSessionEnded   = "session.ended"
	TypeGrantRequested = "grant.requested"
	TypeGrantApproved  = "grant.approved"
	TypeGrantActivated = "grant.activated"
	TypeGrantDenied    = "grant.denied"
	TypeGrantRevoked   = "grant.revoked"
	TypeGrantExpired   = "grant.expired"
	// TypeGrantSuspended and TypeGrantResumed are a grant held back, and
	// then given back, by defensive denial in suspend mode (its access
	// policy changed so that it would no longer be given; then back).
	TypeGrantSuspended     = "grant.suspended"
	TypeGrantResumed       = "grant.resumed"
	TypeCredentialMinted   = "credential.minted"
	TypeCredentialReleased = "credential.released"
	// TypeAdminRequest is a call of the admin API: who did what, with the
	// outcome. (Its effects, a session or grant change, are events too.)
	TypeAdminRequest = "admin.request"
	// TypePolicyLoaded is a set of policies put in force: the one a
	// jitproxy started with, or one a reload replaced it with.
	TypePolicyLoaded = "policy.loaded"
	// TypeLockCreated and TypeLockRemoved are an admin's lock on a user,
	// an agent, a session or an access policy (every matching request is
	// denied while it holds), and its end: removed by an admin, or by
	// jitproxy when it expired.
	TypeLockCreated = "lock.created"
	TypeLockRemoved = "lock.removed"
	// TypePolicyRejected is a set of policies a reload read and refused
	// (it did not compile or validate, or could not be read): the set in
	// force stays, and Outcome.Error says why.
	TypePolicyRejected = "policy.rejected"
)

// Event is one audit record. Version, ID and Time are filled in by
// Recorder.Record when left zero.
type Event struct {
	Version string    `json:"version"`
	ID      string    `json:"id"`
	Time    time.Time `json:"time"`
	Type    string    `json:"type"`

	// RequestID ties a request event to the log lines of the same request.
	RequestID string `json:"request_id,omitempty"`
	// Caller is the agent session of a proxied request.
	Caller *access.Caller `json:"caller,omitempty"`
	// Actor is who caused a control-plane event (a runner, a requester, an
	// approver, or "jitproxy" for expiry).
	Actor *Actor `json:"actor,omitempty"`
	// Action is what a proxied request did.
	Action *access.Action `json:"action,omitempty"`
	// Decision is the policy decision for a proxied request.
	Decision *Decision `json:"decision,omitempty"`
	// Grant is the grant an event is about, or the grant that allowed a request.
	Grant *Grant `json:"grant,omitempty"`
	// Session is the session a session event is about.
	Session *Session `json:"session,omitempty"`
	// Credential describes a minted or released credential, never its value.
	Credential *Credential `json:"credential,omitempty"`
	// Admin is the admin API call of an admin.request event.
	Admin *AdminCall `json:"admin,omitempty"`
	// Lock is the lock a lock event is about.
	Lock *Lock `json:"lock,omitempty"`
	// Policies is the policy set of a policy.loaded or policy.rejected event.
	Policies *PolicySet `json:"policies,omitempty"`
	// Outcome is what came of the event: the HTTP status returned to the
	// agent, or for policy.rejected the error.
	Outcome *Outcome `json:"outcome,omitempty"`
	// DurationMS is how long the request took, from receipt to the end of the
	// response body (for watches: to the end of the stream).
	DurationMS float64 `json:"duration_ms,omitempty"`
}

// Actor is the principal behind a control-plane event.
type Actor struct {
	Name    string   `json:"name"`
	Groups  []string `json:"groups,omitempty"`
	Session string   `json:"session,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	// AuthMethod is how the actor authenticated to the admin API: token,
	// oidc, serviceaccount or session; empty for jitproxy itself.
	AuthMethod string `json:"auth_method,omitempty"`
	// Identity is the identity the actor authenticated as, such as
	// oidc:corp:alice@example.com or serviceaccount:demo:ci/runner; never
	// a secret.
	Identity string `json:"identity,omitempty"`
}

// Decision is a policy decision. A deny is Allowed false with Reasons.
type Decision struct {
	Allowed bool     `json:"allowed"`
	Reasons []string `json:"reasons,omitempty"`
	// Policies lists, for a deny, the access policies the caller could
	// request a grant under to be allowed.
	Policies []string `json:"policies,omitempty"`
}

// Grant is the audit view of a grant.
type Grant struct {
	ID        string `json:"id"`
	Policy    string `json:"policy,omitempty"`
	Version   string `json:"policy_version,omitempty"`
	State     string `json:"state,omitempty"`
	User      string `json:"user,omitempty"`
	Session   string `json:"session,omitempty"`
	Target    string `json:"target,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Reason    string `json:"reason,omitempty"`
	// Approvers are who approved the grant, in order.
	Approvers []string  `json:"approvers,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
	// EndReason is why an ended grant ended: the deny or revoke reason,
	// "expired", or jitproxy's own (a changed access policy, a closed
	// window).
	EndReason string `json:"end_reason,omitempty"`
	// Suspended is why a suspended grant is held back.
	Suspended string `json:"suspended,omitempty"`
	// Learning marks a learning grant, and every request under one: its
	// distinct actions are recorded to a profile.
	Learning bool `json:"learning,omitempty"`
}

// Session is the audit view of an agent session.
type Session struct {
	ID        string    `json:"id"`
	Agent     string    `json:"agent"`
	User      string    `json:"user"`
	Groups    []string  `json:"groups,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Lock is a lock: exactly one of User, Agent, Session and Policy names
// what it locks.
type Lock struct {
	ID      string `json:"id"`
	User    string `json:"user,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Session string `json:"session,omitempty"`
	Policy  string `json:"policy,omitempty"`
	Reason  string `json:"reason,omitempty"`
	// ExpiresAt is when the lock lifts by itself; zero: when removed.
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Target names what l locks, for people: "user dev", "agent claude",
// "session s-...", "access policy pod-reader".
func (l *Lock) Target() string {
	switch {
	case l.User != "":
		return "user " + l.User
	case l.Agent != "":
		return "agent " + l.Agent
	case l.Session != "":
		return "session " + l.Session
	case l.Policy != "":
		return "access policy " + l.Policy
	}
	return "nothing"
}

// Credential describes a credential without its value.
type Credential struct {
	Provider  string    `json:"provider"`
	Target    string    `json:"target,omitempty"`
	Subject   string    `json:"subject,omitempty"`
	ExpiresAt time.Time `json:"expires_at,omitzero"`
}

// Outcome is the result of a request.
type Outcome struct {
	// Status is the HTTP status of the answer; 0 for an event that is not
	// an HTTP exchange (policy.rejected).
	Status int `json:"status"`
	// Bytes is the size of the response body sent to the agent.
	Bytes int64 `json:"bytes,omitempty"`
	// Error is a short, safe description of what failed, never internal detail.
	Error string `json:"error,omitempty"`
}

// AdminCall is one call of the admin API.
type AdminCall struct {
	// Operation is the route called, as "POST /v1/grants/{id}/approve".
	Operation string `json:"operation"`
	// Path is the path called, with the IDs it names.
	Path string `json:"path"`
	// SourceAddr is the address the call came from.
	SourceAddr string `json:"source_address,omitempty"`
}

// PolicySet identifies a set of policies: each access policy with its
// version, and a digest of the Rego authorization policies. In a
// policy.loaded event it is the set put in force; in a policy.rejected
// event, the set that was read and refused, as far as it could be read.
type PolicySet struct {
	// Access are the access policies; nil when they could not be parsed.
	Access []PolicyVersion `json:"access"`
	// AuthzDigest is the SHA-256 of the Rego files, by name and content;
	// "" when they could not be read.
	AuthzDigest string `json:"authz_digest"`
	// AuthzSource and AccessSource say where they were loaded from: a
	// directory, or "embedded".
	AuthzSource  string `json:"authz_source"`
	AccessSource string `json:"access_source"`
	// Trigger says what made jitproxy load the set: TriggerStartup,
	// TriggerSignal or TriggerFileChange.
	Trigger string `json:"trigger,omitempty"`
}

// Values of PolicySet.Trigger.
const (
	// TriggerStartup is the load of a jitproxy that starts.
	TriggerStartup = "startup"
	// TriggerSignal is a reload asked for with SIGHUP.
	TriggerSignal = "sighup"
	// TriggerFileChange is a reload after the policy files changed.
	TriggerFileChange = "file_change"
)

// PolicyVersion is an access policy and the version grants record.
type PolicyVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	Target  string `json:"target"`
}
