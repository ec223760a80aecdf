package ocsf

import "github.com/jitproxy/jitproxy/internal/audit"

// record is one OCSF event as written: every attribute any of the mapped
// classes uses, in a fixed order, each omitted when empty. Which ones a
// class may carry is checked by the schema test, not by the types. unmapped
// comes last, so that its last member, hash, is the last "hash" member of
// the encoding.
type record struct {
	// Classification.
	ActivityID   int    `json:"activity_id"`
	ActivityName string `json:"activity_name"`
	CategoryUID  int    `json:"category_uid"`
	CategoryName string `json:"category_name"`
	ClassUID     int    `json:"class_uid"`
	ClassName    string `json:"class_name"`
	TypeUID      int    `json:"type_uid"`
	TypeName     string `json:"type_name"`
	SeverityID   int    `json:"severity_id"`
	Severity     string `json:"severity"`

	// Outcome.
	StatusID     int    `json:"status_id,omitempty"`
	Status       string `json:"status,omitempty"`
	StatusCode   string `json:"status_code,omitempty"`
	StatusDetail string `json:"status_detail,omitempty"`
	Message      string `json:"message,omitempty"`

	// Occurrence.
	Time int64 `json:"time"`
	// TimezoneOffset is always 0: times are UTC.
	TimezoneOffset int    `json:"timezone_offset"`
	StartTime      int64  `json:"start_time,omitempty"`
	EndTime        int64  `json:"end_time,omitempty"`
	Duration       *int64 `json:"duration,omitempty"`

	Metadata metadata `json:"metadata"`

	// The security_control profile.
	ActionID       int             `json:"action_id,omitempty"`
	Action         string          `json:"action,omitempty"`
	DispositionID  int             `json:"disposition_id,omitempty"`
	Disposition    string          `json:"disposition,omitempty"`
	Authorizations []authorization `json:"authorizations,omitempty"`

	// The cloud profile.
	Cloud *cloud `json:"cloud,omitempty"`

	// API Activity, and the IAM classes' actor and endpoints.
	Actor        *actor        `json:"actor,omitempty"`
	SrcEndpoint  *endpoint     `json:"src_endpoint,omitempty"`
	DstEndpoint  *endpoint     `json:"dst_endpoint,omitempty"`
	API          *api          `json:"api,omitempty"`
	HTTPRequest  *httpRequest  `json:"http_request,omitempty"`
	HTTPResponse *httpResponse `json:"http_response,omitempty"`
	Resources    []resource    `json:"resources,omitempty"`

	// Authentication.
	User    *user    `json:"user,omitempty"`
	Session *session `json:"session,omitempty"`
	Service *service `json:"service,omitempty"`

	// User Access Management.
	Privileges []string `json:"privileges,omitempty"`

	// Entity Management.
	Entity  *managedEntity `json:"entity,omitempty"`
	Comment string         `json:"comment,omitempty"`

	Unmapped unmapped `json:"unmapped"`
}

type metadata struct {
	Version        string   `json:"version"`
	Product        product  `json:"product"`
	Profiles       []string `json:"profiles,omitempty"`
	UID            string   `json:"uid"`
	EventCode      string   `json:"event_code"`
	CorrelationUID string   `json:"correlation_uid,omitempty"`
	Sequence       uint64   `json:"sequence"`
	LogName        string   `json:"log_name"`
	LogVersion     string   `json:"log_version,omitempty"`
	OriginalTime   string   `json:"original_time,omitempty"`
}

type product struct {
	Name       string `json:"name"`
	VendorName string `json:"vendor_name"`
}

type actor struct {
	User    *user    `json:"user,omitempty"`
	Session *session `json:"session,omitempty"`
	AppName string   `json:"app_name,omitempty"`
	IdP     *idp     `json:"idp,omitempty"`
}

// idp is the identity provider that vouched for an actor: an OIDC
// provider, or the cluster that reviewed a ServiceAccount token, by its
// name in jitproxy's configuration.
type idp struct {
	Name         string `json:"name"`
	ProtocolName string `json:"protocol_name,omitempty"`
}

type user struct {
	Name string `json:"name"`
	// UID is the identity the user authenticated as
	// (oidc:corp:alice@example.com), when the actor says.
	UID    string  `json:"uid,omitempty"`
	TypeID int     `json:"type_id,omitempty"`
	Type   string  `json:"type,omitempty"`
	Groups []group `json:"groups,omitempty"`
}

type group struct {
	Name string `json:"name"`
}

type session struct {
	UID            string `json:"uid"`
	CreatedTime    int64  `json:"created_time,omitempty"`
	ExpirationTime int64  `json:"expiration_time,omitempty"`
}

type endpoint struct {
	Name     string `json:"name,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	IP       string `json:"ip,omitempty"`
	Port     int    `json:"port,omitempty"`
}

type api struct {
	Operation string       `json:"operation"`
	Service   *service     `json:"service,omitempty"`
	Group     *group       `json:"group,omitempty"`
	Version   string       `json:"version,omitempty"`
	Request   *apiRequest  `json:"request,omitempty"`
	Response  *apiResponse `json:"response,omitempty"`
}

type service struct {
	Name string `json:"name"`
}

type apiRequest struct {
	UID string `json:"uid"`
}

type apiResponse struct {
	Code         int    `json:"code,omitempty"`
	ErrorMessage string `json:"error_message,omitempty"`
}

type httpRequest struct {
	HTTPMethod string `json:"http_method,omitempty"`
	URL        *url   `json:"url,omitempty"`
}

type url struct {
	Path string `json:"path"`
}

type httpResponse struct {
	Code       int   `json:"code"`
	BodyLength int64 `json:"body_length,omitempty"`
}

type resource struct {
	UID            string `json:"uid,omitempty"`
	Name           string `json:"name,omitempty"`
	Type           string `json:"type,omitempty"`
	Namespace      string `json:"namespace,omitempty"`
	CloudPartition string `json:"cloud_partition,omitempty"`
	Region         string `json:"region,omitempty"`
	RoleID         int    `json:"role_id"`
	Role           string `json:"role"`
}

type cloud struct {
	Provider string   `json:"provider"`
	Region   string   `json:"region,omitempty"`
	Account  *account `json:"account,omitempty"`
}

type account struct {
	UID    string `json:"uid"`
	TypeID int    `json:"type_id"`
	Type   string `json:"type"`
}

type authorization struct {
	Decision string  `json:"decision"`
	Policy   *policy `json:"policy,omitempty"`
}

type policy struct {
	UID       string `json:"uid,omitempty"`
	Name      string `json:"name,omitempty"`
	Type      string `json:"type,omitempty"`
	Version   string `json:"version,omitempty"`
	IsApplied *bool  `json:"is_applied,omitempty"`
}

type managedEntity struct {
	UID    string  `json:"uid,omitempty"`
	Name   string  `json:"name,omitempty"`
	TypeID int     `json:"type_id"`
	Type   string  `json:"type"`
	User   *user   `json:"user,omitempty"`
	Policy *policy `json:"policy,omitempty"`
	// Data is the entity as the native schema writes it.
	Data any `json:"data,omitempty"`
}

// unmapped holds what OCSF has no attribute for, under the native
// schema's names, then the hash chain. PrevHash and Hash are always
// written, Hash last and empty: the stream fills it in (audit.Chainer).
type unmapped struct {
	AuthMethod string `json:"auth_method,omitempty"`
	Agent      string `json:"agent,omitempty"`
	HTTPMethod string `json:"http_method,omitempty"`
	// Bytes is outcome.bytes when it is too large for body_length.
	Bytes      int64             `json:"bytes,omitempty"`
	Decision   *audit.Decision   `json:"decision,omitempty"`
	Grant      *audit.Grant      `json:"grant,omitempty"`
	Credential *audit.Credential `json:"credential,omitempty"`
	// Admin is the admin API call of a caller who was not authenticated.
	Admin *audit.AdminCall `json:"admin,omitempty"`
	// Event is the whole native event, for a type this package does not map.
	Event    *audit.Event `json:"event,omitempty"`
	PrevHash string       `json:"prev_hash"`
	Hash     string       `json:"hash"`
}
