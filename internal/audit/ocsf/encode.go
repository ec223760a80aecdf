package ocsf

import (
	"fmt"
	"math"
	"net/netip"
	"strings"
	"time"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// Version is the OCSF schema version the records follow.
const Version = "1.8.0"

var _ audit.Encoder = Append

// Encode is Append to a new slice.
func Encode(e audit.Event, c audit.Chain) ([]byte, error) {
	return Append(nil, e, c)
}

// Append is the audit.Encoder of OCSF 1.8.0: it appends e to dst as one
// JSON object of the class its type maps to (see the package
// documentation), with the stream's sequence number in metadata.sequence
// and the previous record's hash and an empty "hash" as the last members
// of unmapped, the last member of the record. The same event and chain
// always encode to the same bytes. An event of a type Append does not
// know becomes a Base Event that carries the native event in
// unmapped.event, so no event is lost. It returns an error, and dst as it
// got it, only if JSON encoding fails.
func Append(dst []byte, e audit.Event, c audit.Chain) ([]byte, error) {
	r := mapEvent(e)
	r.Metadata.Sequence = c.Seq
	r.Unmapped.PrevHash = c.Prev
	// Names such as "Identity & Access Management" are written as they
	// are, not as \u0026: the record is not for HTML.
	b, err := r.appendJSON(dst)
	if err != nil {
		return dst, fmt.Errorf("encode audit event %s as OCSF: %w", e.ID, err)
	}
	return b, nil
}

func mapEvent(e audit.Event) record {
	switch e.Type {
	case audit.TypeRequest, audit.TypeRequestDecided:
		if e.Caller == nil || e.Caller.Session == "" {
			return proxyAuthFailure(e)
		}
		return apiActivity(e)
	case audit.TypeSessionCreated, audit.TypeSessionEnded:
		return sessionEvent(e)
	case audit.TypeGrantRequested, audit.TypeGrantApproved, audit.TypeGrantDenied:
		return grantChange(e)
	case audit.TypeGrantActivated, audit.TypeGrantRevoked, audit.TypeGrantExpired, audit.TypeGrantSuspended, audit.TypeGrantResumed:
		return grantAccess(e)
	case audit.TypeCredentialMinted, audit.TypeCredentialReleased:
		return credentialEvent(e)
	case audit.TypeAdminRequest:
		return adminCall(e)
	case audit.TypeLockCreated, audit.TypeLockRemoved:
		return lockEvent(e)
	case audit.TypePolicyLoaded:
		return policyLoaded(e)
	case audit.TypePolicyRejected:
		return policyRejected(e)
	default:
		return baseEvent(e)
	}
}

// Classes, with their category.
const (
	classBase             = 0
	classAuthentication   = 3002
	classEntityManagement = 3004
	classUserAccess       = 3005
	classAPIActivity      = 6003
)

// activityOther is the activity_id (and severity, status, type_id...) value
// "Other" of every OCSF enum.
const activityOther = 99

// newRecord fills in the classification, time and metadata common to every
// class. activityName is used only for activity Other, whose caption OCSF
// wants replaced by the source's own name for the activity.
func newRecord(e audit.Event, class, activity int, activityName string) record {
	className, category, categoryName := classInfo(class)
	act := activityCaption(class, activity)
	r := record{
		ActivityID:   activity,
		ActivityName: act,
		CategoryUID:  category,
		CategoryName: categoryName,
		ClassUID:     class,
		ClassName:    className,
		TypeUID:      class*100 + activity,
		TypeName:     className + ": " + act,
		Time:         e.Time.UnixMilli(),
		Metadata: metadata{
			Version:      Version,
			Product:      product{Name: "jitproxy", VendorName: "jitproxy"},
			UID:          e.ID,
			EventCode:    e.Type,
			LogName:      "audit",
			LogVersion:   e.Version,
			OriginalTime: e.Time.UTC().Format(time.RFC3339Nano),
		},
	}
	if activity == activityOther && activityName != "" {
		r.ActivityName = activityName
	}
	r.setSeverity(severityInformational)
	if e.DurationMS > 0 {
		d := int64(math.Round(e.DurationMS))
		r.Duration = &d
		r.EndTime = r.Time
		r.StartTime = r.Time - d
	}
	return r
}

func classInfo(class int) (name string, category int, categoryName string) {
	switch class {
	case classAuthentication:
		return "Authentication", 3, "Identity & Access Management"
	case classEntityManagement:
		return "Entity Management", 3, "Identity & Access Management"
	case classUserAccess:
		return "User Access Management", 3, "Identity & Access Management"
	case classAPIActivity:
		return "API Activity", 6, "Application Activity"
	default:
		return "Base Event", 0, "Uncategorized"
	}
}

// Activities of the classes used.
const (
	apiCreate = 1
	apiRead   = 2
	apiUpdate = 3
	apiDelete = 4

	authLogon  = 1
	authLogoff = 2

	entityCreate   = 1
	entityUpdate   = 3
	entityDelete   = 4
	entityActivate = 10

	accessAssign = 1
	accessRevoke = 2
)

func activityCaption(class, activity int) string {
	if activity == activityOther {
		return "Other"
	}
	switch class {
	case classAPIActivity:
		switch activity {
		case apiCreate:
			return "Create"
		case apiRead:
			return "Read"
		case apiUpdate:
			return "Update"
		case apiDelete:
			return "Delete"
		}
	case classAuthentication:
		switch activity {
		case authLogon:
			return "Logon"
		case authLogoff:
			return "Logoff"
		}
	case classEntityManagement:
		switch activity {
		case entityCreate:
			return "Create"
		case entityUpdate:
			return "Update"
		case entityDelete:
			return "Delete"
		case entityActivate:
			return "Activate"
		}
	case classUserAccess:
		switch activity {
		case accessAssign:
			return "Assign Privileges"
		case accessRevoke:
			return "Revoke Privileges"
		}
	}
	return "Unknown"
}

const (
	severityInformational = 1
	severityLow           = 2
)

func (r *record) setSeverity(id int) {
	r.SeverityID = id
	switch id {
	case severityInformational:
		r.Severity = "Informational"
	case severityLow:
		r.Severity = "Low"
	}
}

const (
	statusSuccess = 1
	statusFailure = 2
)

func (r *record) setStatus(id int) {
	r.StatusID = id
	switch id {
	case statusSuccess:
		r.Status = "Success"
	case statusFailure:
		r.Status = "Failure"
	}
}

// userTypeUser and userTypeSystem are user.type_id values.
const (
	userTypeUser   = 1
	userTypeSystem = 3
)

// systemName is the name of jitproxy's own actor (expiry, minting).
const systemName = "jitproxy"

func humanUser(name string, groups []string) *user {
	return &user{Name: name, TypeID: userTypeUser, Type: "User", Groups: toGroups(groups)}
}

func toGroups(names []string) []group {
	if len(names) == 0 {
		return nil
	}
	gs := make([]group, len(names))
	for i, n := range names {
		gs[i] = group{Name: n}
	}
	return gs
}

// controlActor maps the actor of a control-plane event: a person or
// service with a static identity, an agent (with its session and agent
// name) or jitproxy itself.
func controlActor(a *audit.Actor) *actor {
	if a == nil {
		return nil
	}
	out := &actor{User: &user{Name: a.Name, UID: a.Identity, Groups: toGroups(a.Groups)}, AppName: a.Agent, IdP: identityProvider(a)}
	if a.Name == systemName && a.Session == "" && a.Agent == "" && len(a.Groups) == 0 {
		out.User.TypeID, out.User.Type = userTypeSystem, "System"
	}
	if a.Session != "" {
		out.Session = &session{UID: a.Session}
	}
	return out
}

// identityProvider is the provider that vouched for an actor who signed in
// with an OIDC ID token or a ServiceAccount token: the source part of
// their identity (oidc:SOURCE:SUBJECT, serviceaccount:SOURCE:NS/NAME);
// nil for a static token, a session credential, or none.
func identityProvider(a *audit.Actor) *idp {
	var protocol string
	switch a.AuthMethod {
	case "oidc":
		protocol = "OpenID Connect"
	case "serviceaccount":
		protocol = "Kubernetes TokenReview"
	default:
		return nil
	}
	method, rest, _ := strings.Cut(a.Identity, ":")
	source, _, ok := strings.Cut(rest, ":")
	if method != a.AuthMethod || !ok || source == "" {
		return nil
	}
	return &idp{Name: source, ProtocolName: protocol}
}

// callerActor maps the agent session of a proxied request: the user it
// acts for, its session and the agent's name.
func callerActor(c *access.Caller) *actor {
	return &actor{User: humanUser(c.User, c.Groups), Session: &session{UID: c.Session}, AppName: c.Agent}
}

// sourceEndpoint parses a network address, "ip:port" or "ip"; an address
// that is neither is kept as the endpoint's name.
func sourceEndpoint(addr string) *endpoint {
	if addr == "" {
		return nil
	}
	if ap, err := netip.ParseAddrPort(addr); err == nil {
		return &endpoint{IP: ap.Addr().String(), Port: int(ap.Port())}
	}
	if a, err := netip.ParseAddr(addr); err == nil {
		return &endpoint{IP: a.String()}
	}
	return &endpoint{Name: addr}
}

// newHTTPResponse is the http_response of an outcome: the status, and the
// body's size in body_length when it fits. body_length is an integer_t,
// which OCSF keeps apart from the 8-byte long_t, so a body of 2 GiB or
// more is counted in unmapped.bytes instead.
func newHTTPResponse(o *audit.Outcome, u *unmapped) *httpResponse {
	resp := &httpResponse{Code: o.Status}
	switch {
	case o.Bytes > math.MaxInt32:
		u.Bytes = o.Bytes
	case o.Bytes > 0:
		resp.BodyLength = o.Bytes
	}
	return resp
}

func millis(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixMilli()
}

// baseEvent is the record of an event type this package does not know:
// a Base Event of activity Other named by the type, with the native event.
func baseEvent(e audit.Event) record {
	r := newRecord(e, classBase, activityOther, e.Type)
	r.Metadata.CorrelationUID = e.RequestID
	r.Unmapped.Event = &e
	return r
}
