// Package ocsf writes jitproxy's audit events in the Open Cybersecurity
// Schema Framework, OCSF 1.8.0, for SIEMs and data lakes that read it
// (Amazon Security Lake, Splunk, Sentinel...). Append is an audit.Encoder:
// one event becomes one OCSF record, with the stream's hash chain.
//
// # Classes
//
// Each jitproxy event type maps to the OCSF class that describes what
// happened, as seen by a security team:
//
//	request, request.decided   API Activity (6003)            an agent's call to the Kubernetes or AWS API
//	  refused before the       Authentication (3002), Logon,  the agent failed to log on to the proxy
//	  session was verified     failed
//	session.created            Authentication (3002), Logon   the user's agent session to jitproxy begins
//	session.ended              Authentication (3002), Logoff  ... and ends
//	grant.requested            Entity Management (3004), Create  a grant request, an entity with a life of
//	grant.approved, .denied    Entity Management (3004), Update  its own, before it changes anyone's access
//	grant.activated            User Access Management (3005), Assign Privileges  the user holds the
//	grant.revoked, .expired,   User Access Management (3005), Revoke Privileges  grant's access, then not
//	.suspended; .resumed       (.resumed: Assign Privileges)
//	credential.minted          Entity Management (3004), Create  jitproxy makes a short-lived credential
//	credential.released        Entity Management (3004), Delete  ... and forgets or revokes it
//	admin.request              API Activity (6003)            a call of jitproxy's admin API
//	  without an actor         Authentication (3002), Logon,  the caller failed to log on to the
//	                           failed                         admin API
//	policy.loaded              Entity Management (3004),      the policy set jitproxy enforces
//	                           Activate                       from its start or a reload
//	policy.rejected            Entity Management (3004),      a reload refused a set: the set
//	                           Activate, failed               in force stays
//	lock.created, .removed     Entity Management (3004),      an admin's lock (every matching
//	                           Create, Delete                 request denied) and its end
//	any other type             Base Event (0), Other          the native event whole in unmapped.event
//
// Why these:
//   - API Activity is the class of CloudTrail and Kubernetes audit logs in
//     OCSF: CRUD calls to an API, with actor, api, resources and the HTTP
//     request. request.decided is the same call at its decision, before
//     any response, so it has no response attributes.
//   - A request refused because it carried no valid session credential
//     (only a CONNECT can be) has no caller: OCSF's API Activity requires
//     an actor and a source endpoint jitproxy does not have. What happened
//     is a failed logon to the proxy, so it is a failed Authentication of
//     user "anonymous".
//   - An agent session is a logon session: a user (through an agent)
//     gets a credential to jitproxy until the session ends. Authorize
//     Session (3003) would fit the groups, but takes a single group.
//   - A grant is an entitlement given to a user for a time. While it is
//     being asked for and approved it changes no one's access: it is an
//     entity managed through the admin API (Entity Management). When it
//     becomes active the user holds new privileges, and when it is revoked
//     or expires they lose them: that is what User Access Management
//     reports (D3FEND's permission granting event). Account Change (3001)
//     is about accounts being created or changed, which a grant does not.
//   - A credential minted for a grant (a Kubernetes token, STS keys) is a
//     short-lived entity jitproxy creates and later deletes or forgets;
//     for Vault's Kubernetes engine it is a service account, but not for
//     STS, so Account Change would be right only for some providers.
//   - An admin API call is an API call like a proxied one, by an
//     authenticated caller from an address: API Activity. Its effects
//     (a session created, a grant approved) are events of their own; this
//     record is the call, with the outcome even when nothing changed.
//   - An admin call without an actor was refused before its caller was
//     authenticated (no or an unknown token, an ended session, or the
//     session store down). That is a failed logon to jitproxy, as a
//     refused CONNECT is: SIEM rules for password spraying and token
//     guessing look for failed Authentication by source, and API Activity
//     would need an actor made up for it.
//   - The policy set loaded at start or by a reload is not created or
//     changed by that event (that happens in git or the configuration,
//     before): it becomes the set jitproxy enforces. Entity Management's
//     Activate is "a change of state of the engine", of a managed entity
//     whose type may be Policy; a set a reload refuses is that activation,
//     failed. The other candidates do not fit: Application Lifecycle
//     (6002) is about the application, not its policies, and has nowhere
//     to put them; Device Config State Change (5019) is about a device's
//     security state; Device Config State (5002) is deprecated.
//
// metadata.event_code is always the native type, so "grant.denied" is
// told from "grant.approved" (both Entity Management: Update) there, and
// in entity.data.state, and an admin call from a proxied request.
//
// # Attributes
//
// API Activity: activity_id from the Kubernetes verb (create; get, list,
// watch; update, patch; delete, deletecollection), the AWS operation's
// leading verb (Get, List, Describe... Read; Create, Run... Create; Put,
// Update, Attach... Update; Delete, Terminate... Delete; anything else
// Other, named in activity_name), or the HTTP method. actor: user (name,
// groups), session (uid) and app_name (the agent). api: operation (the
// Kubernetes verb or the IAM action, "s3:GetObject"), service.name
// ("kubernetes" or the AWS service), group and version (the Kubernetes API
// group and version), request.uid (the request ID), response.code.
// resources: the Kubernetes object (type "pods" or "pods/log", name,
// namespace, and the URL path as uid, which also names a collection) or
// each AWS ARN (uid, name, partition, region). dst_endpoint.name is the
// target's configured name; for a CONNECT, the host and port.
// src_endpoint: the caller's IP and port. http_response: the status, and
// the response body's size in body_length (an integer_t, which OCSF keeps
// apart from the 8-byte long_t: a body of 2 GiB or more is counted in
// unmapped.bytes instead). For AWS the cloud profile adds cloud.provider
// "AWS", cloud.region and cloud.account.uid.
//
// The decision uses the security_control profile: action_id Allowed or
// Denied, disposition_id Allowed, Blocked, Unauthorized (401, 407) or
// Error (5xx), and authorizations[0] with decision "allowed" or "denied"
// and, for a request a grant allowed, policy: the access policy's name and
// version, and the grant's ID as uid (a grant is an instance of its
// policy). status_id is Success when the request was allowed and the
// upstream answered below 400, else Failure; status_detail is the
// decision's reasons or jitproxy's error. A request refused before a
// decision (the session ended, grants could not be read) is Denied: jitproxy
// fails closed. severity_id is Low for a policy denial, a failed logon and
// a forbidden admin call, Informational for everything else.
//
// An admin call: activity_id from the method (POST Create, GET Read,
// DELETE Delete), but a POST to an action of a named resource, as
// "POST /v1/grants/{id}/approve", is an Update of it. actor: the caller
// as in grant events. api: operation the route, service.name "jitproxy",
// response.code and error_message. http_request: method and url.path.
// src_endpoint: the caller's address. resources: what the route's
// wildcards name in the path (uid "g-42", type "grants", the collection),
// the first also in metadata.correlation_uid, as in the grant's or the
// session's own events. status_id is Success below 400, else Failure;
// severity_id Low for 403 (a caller not allowed to do it), else
// Informational. A call without an actor is a failed Authentication of
// user "anonymous", service "jitproxy", with the same source, HTTP
// request and response, and the call in unmapped.admin.
//
// lock.created, lock.removed: entity is the lock, uid and name its ID,
// type "Lock" (type_id Other), data the lock under the native names (what
// it locks, the reason, when it expires); correlation_uid the lock's ID;
// actor who created or removed it (jitproxy, System, for one that
// expired).
//
// policy.loaded: entity is the set, name "jitproxy policies", type_id
// Policy, with policy the Rego authorization policies (name "authz",
// type "Rego", uid their digest) and data the whole set under the native
// names (each access policy with its version and target, the sources,
// the trigger); actor jitproxy (System). policy.rejected is the same
// record of the set that was refused, as far as it was read, with
// status_id Failure, status_detail the error and severity_id Low.
//
// Every record: time (epoch milliseconds; original_time keeps the
// nanoseconds), timezone_offset 0, duration with start_time and end_time
// when the event has a duration, metadata.version "1.8.0",
// metadata.product {name, vendor_name: "jitproxy"}, metadata.uid (the
// event ID), metadata.log_version (the native schema, jitproxy.audit/v1),
// metadata.correlation_uid (the request ID of a request, the grant ID of
// grant and credential events, the session ID of session events, the
// grant or session an admin call names), and a message for people.
//
// # unmapped and the hash chain
//
// What OCSF has no attribute for goes into unmapped under the native
// names: the caller's auth_method, the session's agent, the whole
// decision (with the access policies a denied caller could request), the
// whole grant, the credential, an HTTP method OCSF does not list, a body
// size too large for body_length, the call of an unauthenticated admin
// caller. The stream's sequence number is metadata.sequence. unmapped is
// the record's last member and ends with prev_hash and hash, so that the
// record's own hash is its last "hash" member, where audit.Chainer writes
// it.
package ocsf
