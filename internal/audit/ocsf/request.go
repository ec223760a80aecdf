package ocsf

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"

	"github.com/jitproxy/jitproxy/internal/access"
	"github.com/jitproxy/jitproxy/internal/audit"
)

// Profiles a record may declare in metadata.profiles.
const (
	profileCloud           = "cloud"
	profileSecurityControl = "security_control"
)

// apiActivity maps a proxied request (or its pre-forward decision) of an
// authenticated agent session to API Activity.
func apiActivity(e audit.Event) record {
	var a access.Action
	if e.Action != nil {
		a = *e.Action
	}
	activity, operation := requestActivity(a)
	r := newRecord(e, classAPIActivity, activity, operation)
	r.Metadata.CorrelationUID = e.RequestID
	r.Metadata.Profiles = []string{profileSecurityControl}
	r.Actor = callerActor(e.Caller)
	r.SrcEndpoint = sourceEndpoint(e.Caller.SourceAddr)
	r.Unmapped.AuthMethod = e.Caller.AuthMethod

	o := new(apiObjects)
	o.request = apiRequest{UID: e.RequestID}
	o.api = api{Operation: operation, Request: &o.request}
	r.API = &o.api
	switch {
	case a.Kubernetes != nil:
		k := a.Kubernetes
		o.service = service{Name: access.KindKubernetes}
		r.API.Service = &o.service
		if k.APIGroup != "" {
			o.group = group{Name: k.APIGroup}
			r.API.Group = &o.group
		}
		r.API.Version = k.APIVersion
		if k.ResourceRequest {
			typ := k.Resource
			if k.Subresource != "" {
				typ += "/" + k.Subresource
			}
			o.resource = [1]resource{{UID: a.Path, Name: k.Name, Type: typ, Namespace: k.Namespace, RoleID: 1, Role: "Target"}}
			r.Resources = o.resource[:]
		}
	case a.AWS != nil:
		r.Metadata.Profiles = []string{profileCloud, profileSecurityControl}
		o.service = service{Name: a.AWS.Service}
		r.API.Service = &o.service
		r.Cloud = &cloud{Provider: "AWS", Region: a.AWS.Region}
		if a.AWS.Account != "" {
			r.Cloud.Account = &account{UID: a.AWS.Account, TypeID: 10, Type: "AWS Account"}
		}
		for _, arn := range a.AWS.Resources {
			if arn != "" {
				r.Resources = append(r.Resources, arnResource(arn))
			}
		}
	case a.Kind != "":
		o.service = service{Name: a.Kind}
		r.API.Service = &o.service
	}

	r.HTTPRequest = &o.httpRequest
	if validMethod(a.Method) {
		r.HTTPRequest.HTTPMethod = a.Method
	} else {
		r.Unmapped.HTTPMethod = a.Method
	}
	if a.Method == http.MethodConnect {
		r.DstEndpoint = hostEndpoint(a.Path)
	} else {
		if a.Path != "" {
			o.url = url{Path: a.Path}
			r.HTTPRequest.URL = &o.url
		}
		if a.Target != "" {
			o.dst = endpoint{Name: a.Target}
			r.DstEndpoint = &o.dst
		}
	}
	if *r.HTTPRequest == (httpRequest{}) {
		r.HTTPRequest = nil
	}

	r.setControl(e)
	if e.Grant != nil {
		o.applied = true
		o.policy = policy{UID: e.Grant.ID, Name: e.Grant.Policy, Version: e.Grant.Version, IsApplied: &o.applied}
		r.Authorizations[0].Policy = &o.policy
		r.Unmapped.Grant = e.Grant
	}
	r.Unmapped.Decision = e.Decision
	r.Unmapped.Credential = e.Credential

	if e.Type == audit.TypeRequest && e.Outcome != nil && e.Outcome.Status != 0 {
		r.HTTPResponse = newHTTPResponse(e.Outcome, &r.Unmapped)
		o.response = apiResponse{Code: e.Outcome.Status, ErrorMessage: e.Outcome.Error}
		r.API.Response = &o.response
		r.StatusCode = strconv.Itoa(e.Outcome.Status)
		if e.Outcome.Status >= 400 {
			r.setStatus(statusFailure)
		}
	}
	r.StatusDetail = statusDetail(e)
	r.Message = requestMessage(e, operation, r.StatusID == statusSuccess)
	return r
}

// apiObjects are objects of an API Activity record that apiActivity
// makes, allocated at once rather than each on its own: a proxied request
// is recorded twice, and this is one object for the garbage collector
// instead of up to ten.
type apiObjects struct {
	api         api
	request     apiRequest
	response    apiResponse
	service     service
	group       group
	resource    [1]resource
	httpRequest httpRequest
	url         url
	dst         endpoint
	policy      policy
	applied     bool
}

// Security control actions and dispositions.
const (
	actionAllowed = 1
	actionDenied  = 2

	dispositionAllowed      = 1
	dispositionBlocked      = 2
	dispositionUnauthorized = 26
	dispositionError        = 27
)

// setControl fills in what jitproxy, as a security control, did with the
// request: the action and disposition, authorizations, status and
// severity. A request without a decision was refused before one could be
// made (the session had ended, the grants could not be read): jitproxy
// fails closed, so it is denied.
func (r *record) setControl(e audit.Event) {
	allowed := e.Decision != nil && e.Decision.Allowed
	if allowed {
		r.ActionID, r.Action = actionAllowed, "Allowed"
		r.DispositionID, r.Disposition = dispositionAllowed, "Allowed"
		r.setStatus(statusSuccess)
	} else {
		r.ActionID, r.Action = actionDenied, "Denied"
		r.DispositionID, r.Disposition = dispositionBlocked, "Blocked"
		if e.Outcome != nil {
			switch s := e.Outcome.Status; {
			case s == http.StatusUnauthorized || s == http.StatusProxyAuthRequired:
				r.DispositionID, r.Disposition = dispositionUnauthorized, "Unauthorized"
			case s >= 500:
				r.DispositionID, r.Disposition = dispositionError, "Error"
			}
		}
		r.setStatus(statusFailure)
		if e.Decision != nil {
			r.setSeverity(severityLow)
		}
	}
	if e.Decision != nil {
		d := "denied"
		if allowed {
			d = "allowed"
		}
		r.Authorizations = []authorization{{Decision: d}}
	}
	if e.Grant != nil && r.Authorizations == nil {
		r.Authorizations = []authorization{{Decision: "allowed"}}
	}
}

// statusDetail is why a request failed: the decision's reasons, else the
// error jitproxy answered with.
func statusDetail(e audit.Event) string {
	if e.Decision != nil && len(e.Decision.Reasons) > 0 {
		return strings.Join(e.Decision.Reasons, "; ")
	}
	if e.Outcome != nil {
		return e.Outcome.Error
	}
	return ""
}

func requestMessage(e audit.Event, operation string, ok bool) string {
	var b strings.Builder
	// Most messages fit: one allocation rather than one per doubling.
	b.Grow(128)
	if e.Caller != nil {
		b.WriteString(e.Caller.User)
		if e.Caller.Agent != "" {
			b.WriteString(" (" + e.Caller.Agent + ")")
		}
		b.WriteString(": ")
	}
	b.WriteString(operation)
	if e.Action != nil {
		if k := e.Action.Kubernetes; k != nil && k.ResourceRequest {
			b.WriteString(" " + k.Resource)
			if k.Subresource != "" {
				b.WriteString("/" + k.Subresource)
			}
			if k.Name != "" {
				b.WriteString(" " + k.Name)
			}
			if k.Namespace != "" {
				b.WriteString(" in " + k.Namespace)
			}
		} else if aw := e.Action.AWS; aw != nil && len(aw.Resources) > 0 {
			b.WriteString(" " + strings.Join(aw.Resources, ", "))
		} else if e.Action.Kubernetes != nil || e.Action.Method == http.MethodConnect {
			b.WriteString(" " + e.Action.Path)
		}
		if e.Action.Target != "" {
			b.WriteString(" on " + e.Action.Target)
		}
	}
	switch {
	case e.Decision != nil && !e.Decision.Allowed:
		b.WriteString(": denied")
	case e.Type == audit.TypeRequestDecided:
		b.WriteString(": allowed")
	case ok:
		b.WriteString(": succeeded")
	default:
		b.WriteString(": failed")
	}
	if e.Outcome != nil && e.Outcome.Status != 0 && e.Type == audit.TypeRequest {
		b.WriteString(" (" + strconv.Itoa(e.Outcome.Status) + ")")
	}
	return b.String()
}

// requestActivity returns the API Activity activity_id of a request and
// the name of its operation: the Kubernetes verb, the IAM action, or else
// the HTTP method.
func requestActivity(a access.Action) (int, string) {
	switch {
	case a.Kubernetes != nil:
		return kubernetesActivity(a.Kubernetes.Verb), a.Kubernetes.Verb
	case a.AWS != nil:
		op := a.AWS.Action
		if _, after, ok := strings.Cut(op, ":"); ok {
			op = after
		}
		return awsActivity(op), a.AWS.Action
	case a.Method != "":
		return methodActivity(a.Method), a.Method
	}
	return activityOther, "unknown"
}

func kubernetesActivity(verb string) int {
	switch verb {
	case "create", "post":
		return apiCreate
	case "get", "list", "watch", "head":
		return apiRead
	case "update", "patch", "put":
		return apiUpdate
	case "delete", "deletecollection":
		return apiDelete
	}
	return activityOther
}

func methodActivity(method string) int {
	switch method {
	case http.MethodPost:
		return apiCreate
	case http.MethodGet, http.MethodHead:
		return apiRead
	case http.MethodPut, http.MethodPatch:
		return apiUpdate
	case http.MethodDelete:
		return apiDelete
	}
	return activityOther
}

// awsActivity classifies an AWS API operation by the verb its name starts
// with: GetObject is a Read, BatchWriteItem a Create. Operations that fit
// none (AssumeRole, Invoke, Decrypt...) are Other.
func awsActivity(op string) int {
	verb := firstWord(op)
	if verb == "Batch" {
		verb += firstWord(op[len(verb):])
	}
	switch verb {
	case "Get", "List", "Describe", "Head", "Lookup", "Scan", "Query", "Select", "Search", "Receive", "Download", "BatchGet":
		return apiRead
	case "Create", "Run", "Register", "Allocate", "Import", "Copy", "Upload", "Send", "Publish", "BatchWrite":
		return apiCreate
	case "Update", "Put", "Modify", "Set", "Change", "Attach", "Detach", "Associate", "Disassociate", "Enable", "Disable",
		"Tag", "Untag", "Add", "Replace", "Reset", "Start", "Stop", "Reboot", "Restore", "Rotate", "Complete":
		return apiUpdate
	case "Delete", "Remove", "Terminate", "Deregister", "Release", "Purge", "Abort", "BatchDelete":
		return apiDelete
	}
	return activityOther
}

// firstWord is the first word of a CamelCase name: "Get" of "GetObject".
func firstWord(s string) string {
	for i := 1; i < len(s); i++ {
		if s[i] >= 'A' && s[i] <= 'Z' {
			return s[:i]
		}
	}
	return s
}

// validMethod reports whether m is one of the http_method values OCSF
// defines.
func validMethod(m string) bool {
	switch m {
	case http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace:
		return true
	}
	return false
}

// hostEndpoint is the endpoint of a CONNECT request's "host:port", nil
// without a host.
func hostEndpoint(hostport string) *endpoint {
	if hostport == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, ""
	}
	if host == "" {
		return nil
	}
	ep := &endpoint{Hostname: host}
	if a, err := netip.ParseAddr(host); err == nil {
		ep = &endpoint{IP: a.String()}
	}
	if p, err := strconv.ParseUint(port, 10, 16); err == nil {
		ep.Port = int(p)
	}
	return ep
}

// arnResource is the resource an ARN names
// (arn:partition:service:region:account:resource).
func arnResource(arn string) resource {
	r := resource{UID: arn, RoleID: 1, Role: "Target"}
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) == 6 && parts[0] == "arn" {
		r.CloudPartition = parts[1]
		r.Region = parts[3]
		r.Name = parts[5]
	}
	return r
}

// proxyAuthFailure maps a request refused before its session credential
// was verified (a CONNECT without a valid session) to a failed
// Authentication: the agent did not log on to the proxy.
func proxyAuthFailure(e audit.Event) record {
	r := newRecord(e, classAuthentication, authLogon, "")
	r.setStatus(statusFailure)
	r.setSeverity(severityLow)
	r.Metadata.CorrelationUID = e.RequestID
	r.User = &user{Name: "anonymous"}
	r.Service = &service{Name: systemName}
	if e.Caller != nil {
		r.SrcEndpoint = sourceEndpoint(e.Caller.SourceAddr)
		r.Unmapped.AuthMethod = e.Caller.AuthMethod
	}
	if a := e.Action; a != nil {
		if validMethod(a.Method) {
			r.HTTPRequest = &httpRequest{HTTPMethod: a.Method}
		} else {
			r.Unmapped.HTTPMethod = a.Method
		}
		if a.Method == http.MethodConnect {
			r.DstEndpoint = hostEndpoint(a.Path)
		}
	}
	if e.Outcome != nil && e.Outcome.Status != 0 {
		r.HTTPResponse = newHTTPResponse(e.Outcome, &r.Unmapped)
		r.StatusCode = strconv.Itoa(e.Outcome.Status)
	}
	r.StatusDetail = statusDetail(e)
	r.Unmapped.Decision = e.Decision
	r.Message = "proxy authentication failed"
	if r.StatusDetail != "" {
		r.Message += ": " + r.StatusDetail
	}
	return r
}
