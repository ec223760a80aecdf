package ocsf

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// adminCall maps a call of the admin API. A caller who was authenticated
// made an API call: API Activity. A call without an actor was refused
// before its caller was authenticated (no or an unknown token, or the
// session could not be checked): a failed logon to jitproxy.
func adminCall(e audit.Event) record {
	if e.Actor == nil {
		return adminAuthFailure(e)
	}
	var c audit.AdminCall
	if e.Admin != nil {
		c = *e.Admin
	}
	method, pattern := splitOperation(c.Operation)
	activity := adminActivity(method, pattern)
	r := newRecord(e, classAPIActivity, activity, c.Operation)
	r.Actor = controlActor(e.Actor)
	r.SrcEndpoint = sourceEndpoint(c.SourceAddr)
	r.API = &api{Operation: c.Operation, Service: &service{Name: systemName}}
	r.HTTPRequest = adminHTTPRequest(method, c.Path, &r.Unmapped)
	r.Resources = pathResources(pattern, c.Path)
	if len(r.Resources) > 0 {
		// The grant or session the call is about, as in the events of
		// that grant or session.
		r.Metadata.CorrelationUID = r.Resources[0].UID
	}
	if o := e.Outcome; o != nil && o.Status != 0 {
		r.HTTPResponse = newHTTPResponse(o, &r.Unmapped)
		r.API.Response = &apiResponse{Code: o.Status, ErrorMessage: o.Error}
		r.StatusCode = strconv.Itoa(o.Status)
		r.setStatus(statusSuccess)
		if o.Status >= 400 {
			r.setStatus(statusFailure)
		}
		if o.Status == http.StatusForbidden {
			r.setSeverity(severityLow)
		}
	}
	if e.Outcome != nil {
		r.StatusDetail = e.Outcome.Error
	}
	r.Message = adminMessage(e.Actor.Name, method, c.Path, e.Outcome)
	return r
}

// adminAuthFailure maps an admin API call refused before its caller was
// authenticated to a failed Authentication, as proxyAuthFailure does for
// the proxy: the caller did not log on to jitproxy.
func adminAuthFailure(e audit.Event) record {
	r := newRecord(e, classAuthentication, authLogon, "")
	r.setStatus(statusFailure)
	r.setSeverity(severityLow)
	r.User = &user{Name: "anonymous"}
	r.Service = &service{Name: systemName}
	var method, path string
	if c := e.Admin; c != nil {
		r.SrcEndpoint = sourceEndpoint(c.SourceAddr)
		method, _ = splitOperation(c.Operation)
		path = c.Path
		r.HTTPRequest = adminHTTPRequest(method, path, &r.Unmapped)
		r.Unmapped.Admin = c
	}
	if o := e.Outcome; o != nil {
		if o.Status != 0 {
			r.HTTPResponse = newHTTPResponse(o, &r.Unmapped)
			r.StatusCode = strconv.Itoa(o.Status)
		}
		r.StatusDetail = o.Error
	}
	r.Message = "admin API authentication failed"
	if path != "" {
		r.Message += " for " + strings.TrimSpace(method+" "+path)
	}
	if r.StatusDetail != "" {
		r.Message += ": " + r.StatusDetail
	}
	return r
}

// splitOperation splits a route, "POST /v1/grants/{id}/approve", into its
// method and path pattern. A route without a method has none.
func splitOperation(op string) (method, pattern string) {
	if m, p, ok := strings.Cut(op, " "); ok {
		return m, strings.TrimSpace(p)
	}
	return "", op
}

// adminActivity is the API Activity activity_id of an admin API route:
// from its method, except that a POST to an action of a named resource
// ("/v1/grants/{id}/approve") updates that resource rather than creating
// one.
func adminActivity(method, pattern string) int {
	if method == http.MethodPost {
		segs := segments(pattern)
		if n := len(segs); n >= 2 && isWildcard(segs[n-2]) && !isWildcard(segs[n-1]) {
			return apiUpdate
		}
	}
	return methodActivity(method)
}

// adminHTTPRequest is the http_request of an admin call; a method OCSF
// does not list goes to unmapped. It is nil when there is neither.
func adminHTTPRequest(method, path string, u *unmapped) *httpRequest {
	req := &httpRequest{}
	if validMethod(method) {
		req.HTTPMethod = method
	} else {
		u.HTTPMethod = method
	}
	if path != "" {
		req.URL = &url{Path: path}
	}
	if *req == (httpRequest{}) {
		return nil
	}
	return req
}

// pathResources are the resources a path names where its route has a
// wildcard: "/v1/grants/g-42/approve" of "/v1/grants/{id}/approve" names
// g-42, of type "grants" (the collection, as Kubernetes resources are
// named). A path that does not match its route names none.
func pathResources(pattern, path string) []resource {
	pat, segs := segments(pattern), segments(path)
	if len(pat) != len(segs) {
		return nil
	}
	var rs []resource
	for i := 1; i < len(pat); i++ {
		if isWildcard(pat[i]) && segs[i] != "" {
			rs = append(rs, resource{UID: segs[i], Type: pat[i-1], RoleID: 1, Role: "Target"})
		}
	}
	return rs
}

func segments(path string) []string {
	return strings.Split(strings.Trim(path, "/"), "/")
}

func isWildcard(seg string) bool {
	return len(seg) > 2 && seg[0] == '{' && seg[len(seg)-1] == '}'
}

func adminMessage(who, method, path string, o *audit.Outcome) string {
	var b strings.Builder
	b.WriteString(who + ": " + strings.TrimSpace(method+" "+path))
	if o == nil {
		return b.String()
	}
	if o.Status != 0 && o.Status < 400 {
		b.WriteString(": succeeded")
	} else {
		b.WriteString(": failed")
	}
	if o.Status != 0 {
		b.WriteString(" (" + strconv.Itoa(o.Status) + ")")
	}
	if o.Error != "" {
		b.WriteString(": " + o.Error)
	}
	return b.String()
}
