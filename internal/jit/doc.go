// Package jit owns just-in-time access: access policies (who may ask for
// what, for how long, approved by whom), agent sessions, grants and their
// state machine, approvals, expiry and revocation, and the admin API through
// which runners, requesters and approvers drive them.
//
// A grant moves through these states:
//
//	PENDING ──approve (enough approvals)──▶ ACTIVE ──expiry──▶ EXPIRED
//	   │  └──deny──▶ DENIED                   └──revoke──▶ REVOKED
//	   ├──revoke──▶ REVOKED
//	   └──approval timeout──▶ EXPIRED
//
// A grant whose policy needs no approval is ACTIVE as soon as it is
// requested. ACTIVE grants are the only source of privilege on the data
// plane, and one past its expiry is never treated as active, whether or not
// the expiry loop has yet recorded it as EXPIRED.
//
// All state lives in Redis so that replicas agree; every state change is an
// atomic transaction, is published on a channel (naming the user it
// concerns) so that every replica drops what it cached of that user's at
// once, and is recorded as an audit event.
package jit
