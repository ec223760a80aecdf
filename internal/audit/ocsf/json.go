package ocsf

import (
	"bytes"
	"encoding/json"
	"strconv"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// A record is written as JSON by hand rather than by encoding/json, which
// reflects over every field of every record, on the request path when the
// audit format is OCSF. The bytes are exactly those of a json.Encoder with
// SetEscapeHTML(false), without its newline: members in the order of the
// fields, omitempty as encoding/json reads it (a zero number, an empty
// string or slice, a nil pointer or interface), strings escaped as
// audit.AppendJSONString does without HTML escaping, and the native
// objects in unmapped and entity.data as their AppendJSON methods write
// them. TestAppendMatchesEncodingJSON and FuzzAppendMatchesJSON check
// them against encoding/json itself. A field added to record, or to a
// type it holds, must be added here too: TestAppendMatchesEncodingJSON
// fills every field by reflection and fails until it is.
//
// Each object's members are appended with a comma before each; closeObject
// then turns the first comma into the opening brace, so that an object
// whose first members may be left out needs no bookkeeping.

// appendJSON appends r as one JSON object to b. It fails only where the
// native objects it carries do (a time RFC 3339 cannot write, a duration
// that is not a number), returning nil.
func (r *record) appendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = appendInt(b, `,"activity_id":`, int64(r.ActivityID))
	b = appendString(b, `,"activity_name":`, r.ActivityName)
	b = appendInt(b, `,"category_uid":`, int64(r.CategoryUID))
	b = appendString(b, `,"category_name":`, r.CategoryName)
	b = appendInt(b, `,"class_uid":`, int64(r.ClassUID))
	b = appendString(b, `,"class_name":`, r.ClassName)
	b = appendInt(b, `,"type_uid":`, int64(r.TypeUID))
	b = appendString(b, `,"type_name":`, r.TypeName)
	b = appendInt(b, `,"severity_id":`, int64(r.SeverityID))
	b = appendString(b, `,"severity":`, r.Severity)

	b = appendIntOmitEmpty(b, `,"status_id":`, int64(r.StatusID))
	b = appendStringOmitEmpty(b, `,"status":`, r.Status)
	b = appendStringOmitEmpty(b, `,"status_code":`, r.StatusCode)
	b = appendStringOmitEmpty(b, `,"status_detail":`, r.StatusDetail)
	b = appendStringOmitEmpty(b, `,"message":`, r.Message)

	b = appendInt(b, `,"time":`, r.Time)
	b = appendInt(b, `,"timezone_offset":`, int64(r.TimezoneOffset))
	b = appendIntOmitEmpty(b, `,"start_time":`, r.StartTime)
	b = appendIntOmitEmpty(b, `,"end_time":`, r.EndTime)
	if r.Duration != nil {
		b = appendInt(b, `,"duration":`, *r.Duration)
	}

	b = r.Metadata.appendJSON(append(b, `,"metadata":`...))

	b = appendIntOmitEmpty(b, `,"action_id":`, int64(r.ActionID))
	b = appendStringOmitEmpty(b, `,"action":`, r.Action)
	b = appendIntOmitEmpty(b, `,"disposition_id":`, int64(r.DispositionID))
	b = appendStringOmitEmpty(b, `,"disposition":`, r.Disposition)
	b = appendArrayOmitEmpty(b, `,"authorizations":`, r.Authorizations, (*authorization).appendJSON)

	if r.Cloud != nil {
		b = r.Cloud.appendJSON(append(b, `,"cloud":`...))
	}

	if r.Actor != nil {
		b = r.Actor.appendJSON(append(b, `,"actor":`...))
	}
	if r.SrcEndpoint != nil {
		b = r.SrcEndpoint.appendJSON(append(b, `,"src_endpoint":`...))
	}
	if r.DstEndpoint != nil {
		b = r.DstEndpoint.appendJSON(append(b, `,"dst_endpoint":`...))
	}
	if r.API != nil {
		b = r.API.appendJSON(append(b, `,"api":`...))
	}
	if r.HTTPRequest != nil {
		b = r.HTTPRequest.appendJSON(append(b, `,"http_request":`...))
	}
	if r.HTTPResponse != nil {
		b = r.HTTPResponse.appendJSON(append(b, `,"http_response":`...))
	}
	b = appendArrayOmitEmpty(b, `,"resources":`, r.Resources, (*resource).appendJSON)

	if r.User != nil {
		b = r.User.appendJSON(append(b, `,"user":`...))
	}
	if r.Session != nil {
		b = r.Session.appendJSON(append(b, `,"session":`...))
	}
	if r.Service != nil {
		b = r.Service.appendJSON(append(b, `,"service":`...))
	}

	if len(r.Privileges) > 0 {
		b = audit.AppendJSONStrings(append(b, `,"privileges":`...), r.Privileges, false)
	}

	var err error
	if r.Entity != nil {
		if b, err = r.Entity.appendJSON(append(b, `,"entity":`...)); err != nil {
			return nil, err
		}
	}
	b = appendStringOmitEmpty(b, `,"comment":`, r.Comment)

	if b, err = r.Unmapped.appendJSON(append(b, `,"unmapped":`...)); err != nil {
		return nil, err
	}
	return closeObject(b, start), nil
}

func (m *metadata) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"version":`, m.Version)
	b = m.Product.appendJSON(append(b, `,"product":`...))
	if len(m.Profiles) > 0 {
		b = audit.AppendJSONStrings(append(b, `,"profiles":`...), m.Profiles, false)
	}
	b = appendString(b, `,"uid":`, m.UID)
	b = appendString(b, `,"event_code":`, m.EventCode)
	b = appendStringOmitEmpty(b, `,"correlation_uid":`, m.CorrelationUID)
	b = strconv.AppendUint(append(b, `,"sequence":`...), m.Sequence, 10)
	b = appendString(b, `,"log_name":`, m.LogName)
	b = appendStringOmitEmpty(b, `,"log_version":`, m.LogVersion)
	b = appendStringOmitEmpty(b, `,"original_time":`, m.OriginalTime)
	return closeObject(b, start)
}

func (p *product) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"name":`, p.Name)
	b = appendString(b, `,"vendor_name":`, p.VendorName)
	return closeObject(b, start)
}

func (a *actor) appendJSON(b []byte) []byte {
	start := len(b)
	if a.User != nil {
		b = a.User.appendJSON(append(b, `,"user":`...))
	}
	if a.Session != nil {
		b = a.Session.appendJSON(append(b, `,"session":`...))
	}
	b = appendStringOmitEmpty(b, `,"app_name":`, a.AppName)
	if a.IdP != nil {
		b = a.IdP.appendJSON(append(b, `,"idp":`...))
	}
	return closeObject(b, start)
}

func (p *idp) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"name":`, p.Name)
	b = appendStringOmitEmpty(b, `,"protocol_name":`, p.ProtocolName)
	return closeObject(b, start)
}

func (u *user) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"name":`, u.Name)
	b = appendStringOmitEmpty(b, `,"uid":`, u.UID)
	b = appendIntOmitEmpty(b, `,"type_id":`, int64(u.TypeID))
	b = appendStringOmitEmpty(b, `,"type":`, u.Type)
	b = appendArrayOmitEmpty(b, `,"groups":`, u.Groups, (*group).appendJSON)
	return closeObject(b, start)
}

func (g *group) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"name":`, g.Name)
	return closeObject(b, start)
}

func (s *session) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"uid":`, s.UID)
	b = appendIntOmitEmpty(b, `,"created_time":`, s.CreatedTime)
	b = appendIntOmitEmpty(b, `,"expiration_time":`, s.ExpirationTime)
	return closeObject(b, start)
}

func (e *endpoint) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"name":`, e.Name)
	b = appendStringOmitEmpty(b, `,"hostname":`, e.Hostname)
	b = appendStringOmitEmpty(b, `,"ip":`, e.IP)
	b = appendIntOmitEmpty(b, `,"port":`, int64(e.Port))
	return closeObject(b, start)
}

func (a *api) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"operation":`, a.Operation)
	if a.Service != nil {
		b = a.Service.appendJSON(append(b, `,"service":`...))
	}
	if a.Group != nil {
		b = a.Group.appendJSON(append(b, `,"group":`...))
	}
	b = appendStringOmitEmpty(b, `,"version":`, a.Version)
	if a.Request != nil {
		b = a.Request.appendJSON(append(b, `,"request":`...))
	}
	if a.Response != nil {
		b = a.Response.appendJSON(append(b, `,"response":`...))
	}
	return closeObject(b, start)
}

func (s *service) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"name":`, s.Name)
	return closeObject(b, start)
}

func (r *apiRequest) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"uid":`, r.UID)
	return closeObject(b, start)
}

func (r *apiResponse) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendIntOmitEmpty(b, `,"code":`, int64(r.Code))
	b = appendStringOmitEmpty(b, `,"error_message":`, r.ErrorMessage)
	return closeObject(b, start)
}

func (r *httpRequest) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"http_method":`, r.HTTPMethod)
	if r.URL != nil {
		b = r.URL.appendJSON(append(b, `,"url":`...))
	}
	return closeObject(b, start)
}

func (u *url) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"path":`, u.Path)
	return closeObject(b, start)
}

func (r *httpResponse) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendInt(b, `,"code":`, int64(r.Code))
	b = appendIntOmitEmpty(b, `,"body_length":`, r.BodyLength)
	return closeObject(b, start)
}

func (r *resource) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"uid":`, r.UID)
	b = appendStringOmitEmpty(b, `,"name":`, r.Name)
	b = appendStringOmitEmpty(b, `,"type":`, r.Type)
	b = appendStringOmitEmpty(b, `,"namespace":`, r.Namespace)
	b = appendStringOmitEmpty(b, `,"cloud_partition":`, r.CloudPartition)
	b = appendStringOmitEmpty(b, `,"region":`, r.Region)
	b = appendInt(b, `,"role_id":`, int64(r.RoleID))
	b = appendString(b, `,"role":`, r.Role)
	return closeObject(b, start)
}

func (c *cloud) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"provider":`, c.Provider)
	b = appendStringOmitEmpty(b, `,"region":`, c.Region)
	if c.Account != nil {
		b = c.Account.appendJSON(append(b, `,"account":`...))
	}
	return closeObject(b, start)
}

func (a *account) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"uid":`, a.UID)
	b = appendInt(b, `,"type_id":`, int64(a.TypeID))
	b = appendString(b, `,"type":`, a.Type)
	return closeObject(b, start)
}

func (a *authorization) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendString(b, `,"decision":`, a.Decision)
	if a.Policy != nil {
		b = a.Policy.appendJSON(append(b, `,"policy":`...))
	}
	return closeObject(b, start)
}

func (p *policy) appendJSON(b []byte) []byte {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"uid":`, p.UID)
	b = appendStringOmitEmpty(b, `,"name":`, p.Name)
	b = appendStringOmitEmpty(b, `,"type":`, p.Type)
	b = appendStringOmitEmpty(b, `,"version":`, p.Version)
	if p.IsApplied != nil {
		b = strconv.AppendBool(append(b, `,"is_applied":`...), *p.IsApplied)
	}
	return closeObject(b, start)
}

func (e *managedEntity) appendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"uid":`, e.UID)
	b = appendStringOmitEmpty(b, `,"name":`, e.Name)
	b = appendInt(b, `,"type_id":`, int64(e.TypeID))
	b = appendString(b, `,"type":`, e.Type)
	if e.User != nil {
		b = e.User.appendJSON(append(b, `,"user":`...))
	}
	if e.Policy != nil {
		b = e.Policy.appendJSON(append(b, `,"policy":`...))
	}
	if e.Data != nil {
		var err error
		if b, err = appendData(append(b, `,"data":`...), e.Data); err != nil {
			return nil, err
		}
	}
	return closeObject(b, start), nil
}

// appendData appends an entity's data as encoding/json writes an any:
// the native objects the mapping puts there by hand (a nil pointer as
// null), anything else through encoding/json.
func appendData(b []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case *audit.Grant:
		return v.AppendJSON(b, false)
	case *audit.Credential:
		return v.AppendJSON(b, false)
	case *audit.PolicySet:
		return v.AppendJSON(b, false), nil
	case *audit.Lock:
		return v.AppendJSON(b, false)
	}
	// No mapping puts anything else in data: this keeps a value of
	// another type written as it would be, only slower.
	buf := bytes.NewBuffer(b)
	enc := json.NewEncoder(buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

func (u *unmapped) appendJSON(b []byte) ([]byte, error) {
	start := len(b)
	b = appendStringOmitEmpty(b, `,"auth_method":`, u.AuthMethod)
	b = appendStringOmitEmpty(b, `,"agent":`, u.Agent)
	b = appendStringOmitEmpty(b, `,"http_method":`, u.HTTPMethod)
	b = appendIntOmitEmpty(b, `,"bytes":`, u.Bytes)
	var err error
	if u.Decision != nil {
		b = u.Decision.AppendJSON(append(b, `,"decision":`...), false)
	}
	if u.Grant != nil {
		if b, err = u.Grant.AppendJSON(append(b, `,"grant":`...), false); err != nil {
			return nil, err
		}
	}
	if u.Credential != nil {
		if b, err = u.Credential.AppendJSON(append(b, `,"credential":`...), false); err != nil {
			return nil, err
		}
	}
	if u.Admin != nil {
		b = u.Admin.AppendJSON(append(b, `,"admin":`...), false)
	}
	if u.Event != nil {
		if b, err = u.Event.AppendJSON(append(b, `,"event":`...), false); err != nil {
			return nil, err
		}
	}
	b = appendString(b, `,"prev_hash":`, u.PrevHash)
	b = appendString(b, `,"hash":`, u.Hash)
	return closeObject(b, start), nil
}

// closeObject ends the object whose members were appended from start,
// each after a comma: the first comma becomes its opening brace, or the
// object is {} when it has none.
func closeObject(b []byte, start int) []byte {
	if len(b) == start {
		b = append(b, '{')
	} else {
		b[start] = '{'
	}
	return append(b, '}')
}

// appendString appends key and s.
func appendString(b []byte, key, s string) []byte {
	return audit.AppendJSONString(append(b, key...), s, false)
}

// appendStringOmitEmpty appends key and s unless s is empty (omitempty).
func appendStringOmitEmpty(b []byte, key, s string) []byte {
	if s == "" {
		return b
	}
	return appendString(b, key, s)
}

// appendInt appends key and n.
func appendInt(b []byte, key string, n int64) []byte {
	return strconv.AppendInt(append(b, key...), n, 10)
}

// appendIntOmitEmpty appends key and n unless n is 0 (omitempty).
func appendIntOmitEmpty(b []byte, key string, n int64) []byte {
	if n == 0 {
		return b
	}
	return appendInt(b, key, n)
}

// appendArrayOmitEmpty appends key and the elements of s as a JSON array,
// each as appendElem writes it, unless s is empty (omitempty).
func appendArrayOmitEmpty[T any](b []byte, key string, s []T, appendElem func(*T, []byte) []byte) []byte {
	if len(s) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i := range s {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendElem(&s[i], b)
	}
	return append(b, ']')
}
