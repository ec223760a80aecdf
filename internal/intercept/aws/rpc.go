package aws

import (
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/jitproxy/jitproxy/internal/strictjson"
)

// Query and JSON protocols: the operation is named by a parameter (Action=)
// or a header (X-Amz-Target), and the IAM action is the operation's name
// unless a service says otherwise.

// operationName is the shape of an API operation name.
var operationName = regexp.MustCompile(`^[A-Z][A-Za-z0-9]{0,127}$`)

// params are the named values of a request: query-protocol parameters or
// the top-level members of a JSON body.
type params interface {
	// str returns the string value of name, "" when absent. A value of
	// another type is an error.
	str(name string) (string, error)
}

// rpcService is a service of the query or JSON protocol.
type rpcService struct {
	// query is true for services of the query protocol (Action=).
	query bool
	// targetPrefix, for services of the JSON protocol, is what precedes
	// the operation name in X-Amz-Target.
	targetPrefix string
	// actions maps operation names to IAM action names where they differ.
	actions map[string]string
	// resources returns the ARNs an operation acts on, from its
	// parameters. Operations it does not know name no resources.
	resources func(c *call, op string, p params, o *operation) error
	// needsBody reports whether resources reads the JSON body for op.
	needsBody func(op string) bool
	// queuePath is true for SQS, whose legacy query API may name the queue
	// in the path (/ACCOUNT/QUEUE).
	queuePath bool
}

func (s *rpcService) classify(c *call) (operation, error) {
	if err := singleValued(c.query); err != nil {
		return operation{}, err
	}
	targets := c.r.Header.Values("X-Amz-Target")
	switch {
	case len(targets) > 1:
		return operation{}, errors.New("the request has more than one X-Amz-Target header")
	case len(targets) == 1 && s.targetPrefix != "":
		return s.classifyJSON(c, targets[0])
	case len(targets) == 1:
		return operation{}, fmt.Errorf("service %q does not take X-Amz-Target headers", c.service)
	case s.query:
		return s.classifyQuery(c)
	}
	return operation{}, fmt.Errorf("the request has no X-Amz-Target header naming the %s operation", c.service)
}

func (s *rpcService) finish(c *call, op string, p params) (operation, error) {
	o := operation{action: op}
	if a, ok := s.actions[op]; ok {
		o.action = a
	}
	if s.resources != nil {
		if err := s.resources(c, op, p, &o); err != nil {
			return operation{}, fmt.Errorf("%s %s: %w", c.service, op, err)
		}
	}
	return o, nil
}

// classifyJSON classifies a JSON-protocol request: POST / with the
// operation in X-Amz-Target and its input as a JSON object.
func (s *rpcService) classifyJSON(c *call, target string) (operation, error) {
	prefix, op, ok := strings.Cut(target, ".")
	if !ok || prefix != s.targetPrefix || !operationName.MatchString(op) {
		return operation{}, fmt.Errorf("X-Amz-Target %q is not an operation of %s (%s.OPERATION)", target, c.service, s.targetPrefix)
	}
	if c.r.Method != "POST" || c.r.URL.EscapedPath() != "/" || c.r.URL.RawQuery != "" {
		return operation{}, fmt.Errorf("a %s request with X-Amz-Target must be POST / without a query string", c.service)
	}
	// The content type is checked even when the body is not read: a
	// service that speaks two protocols (SQS) may choose by it.
	if err := checkMediaType(c, "application/x-amz-json-1.0", "application/x-amz-json-1.1"); err != nil {
		return operation{}, err
	}
	var p params = jsonParams(nil)
	if s.needsBody != nil && s.needsBody(op) {
		b, err := c.readBody()
		if err != nil {
			return operation{}, err
		}
		if p, err = parseJSONObject(b); err != nil {
			return operation{}, err
		}
	}
	return s.finish(c, op, p)
}

// classifyQuery classifies a query-protocol request: Action and the other
// parameters in the query string or in a form-encoded body, never both.
func (s *rpcService) classifyQuery(c *call) (operation, error) {
	if c.r.Method != "GET" && c.r.Method != "POST" {
		return operation{}, fmt.Errorf("%s requests are GET or POST, not %s", c.service, c.r.Method)
	}
	all := url.Values{}
	for k, v := range c.query {
		all[k] = v
	}
	form := hasMediaType(c, "application/x-www-form-urlencoded")
	if form || c.r.ContentLength != 0 {
		b, err := c.readBody()
		if err != nil {
			return operation{}, err
		}
		if len(b) > 0 && !form {
			return operation{}, fmt.Errorf("a %s request body must be application/x-www-form-urlencoded", c.service)
		}
		if !utf8.Valid(b) {
			return operation{}, errors.New("the request body is not valid UTF-8")
		}
		body, err := parseQuery(string(b))
		if err == nil {
			err = singleValued(body)
		}
		if err != nil {
			return operation{}, fmt.Errorf("request body: %w", err)
		}
		if err := checkPresigned(body); err != nil {
			return operation{}, err
		}
		for k, v := range body {
			if _, dup := all[k]; dup {
				return operation{}, fmt.Errorf("parameter %q is in both the query string and the body", k)
			}
			all[k] = v
		}
	}
	op := all.Get("Action")
	if !operationName.MatchString(op) {
		return operation{}, fmt.Errorf("the request has no valid Action parameter naming the %s operation", c.service)
	}
	p := queryParams(all)
	if c.r.URL.EscapedPath() != "/" {
		if !s.queuePath {
			return operation{}, fmt.Errorf("%s requests are sent to the path /", c.service)
		}
		// Legacy SQS: the queue URL's path is the request's path.
		if err := s.pathQueue(c, p); err != nil {
			return operation{}, err
		}
	}
	return s.finish(c, op, p)
}

// pathQueue moves a queue named by the path (/ACCOUNT/QUEUE) into the
// QueueUrl parameter; a request naming two queues is refused.
func (s *rpcService) pathQueue(c *call, p queryParams) error {
	path := c.r.URL.EscapedPath()
	u := "https://" + c.ep.host + path
	account, name, err := parseQueueURL(c, u)
	if err != nil {
		return fmt.Errorf("request path %q: %w", path, err)
	}
	if q, ok := p["QueueUrl"]; ok {
		a, n, err := parseQueueURL(c, q[0])
		if err != nil || a != account || n != name {
			return errors.New("the request names one queue in its path and another in QueueUrl")
		}
	}
	p["QueueUrl"] = []string{u}
	return nil
}

// queryParams are query-protocol parameters. Values were checked to be
// single.
type queryParams url.Values

func (p queryParams) str(name string) (string, error) {
	if v, ok := p[name]; ok {
		return v[0], nil
	}
	return "", nil
}

// jsonParams are the top-level members of a JSON object.
type jsonParams map[string]json.RawMessage

func (p jsonParams) str(name string) (string, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", fmt.Errorf("member %q is not a string", name)
	}
	return s, nil
}

// obj returns member name as an object, nil when absent.
func (p jsonParams) obj(name string) (jsonParams, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var o jsonParams
	if err := json.Unmarshal(raw, &o); err != nil || o == nil {
		return nil, fmt.Errorf("member %q is not an object", name)
	}
	return o, nil
}

// list returns member name as a list of objects, nil when absent.
func (p jsonParams) list(name string) ([]jsonParams, error) {
	raw, ok := p[name]
	if !ok || string(raw) == "null" {
		return nil, nil
	}
	var l []jsonParams
	if err := json.Unmarshal(raw, &l); err != nil {
		return nil, fmt.Errorf("member %q is not a list of objects", name)
	}
	return l, nil
}

// maxJSONDepth bounds the nesting of a JSON body Classify reads.
const maxJSONDepth = 64

// parseJSONObject parses a JSON object, refusing what two parsers could
// read two ways: invalid UTF-8, a member name given twice at any depth,
// and trailing data.
func parseJSONObject(b []byte) (jsonParams, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("the request body is not valid UTF-8")
	}
	if err := strictjson.Check(b, maxJSONDepth); err != nil {
		return nil, fmt.Errorf("request body: %w", err)
	}
	var p jsonParams
	if err := json.Unmarshal(b, &p); err != nil || p == nil {
		return nil, errors.New("the request body is not a JSON object")
	}
	return p, nil
}

// hasMediaType reports whether the request's Content-Type is one of types.
func hasMediaType(c *call, types ...string) bool {
	ct := c.r.Header.Values("Content-Type")
	if len(ct) != 1 {
		return false
	}
	mt, _, err := mime.ParseMediaType(ct[0])
	if err != nil {
		return false
	}
	for _, t := range types {
		if mt == t {
			return true
		}
	}
	return false
}

// checkMediaType refuses a body that is not of one of types, or that is
// encoded.
func checkMediaType(c *call, types ...string) error {
	if !hasMediaType(c, types...) {
		return fmt.Errorf("the request body must be of type %s", strings.Join(types, " or "))
	}
	return checkEncoding(c)
}

// checkEncoding refuses an encoded (compressed, aws-chunked) body:
// Classify reads bodies as they are.
func checkEncoding(c *call) error {
	for _, e := range c.r.Header.Values("Content-Encoding") {
		if e != "" && !strings.EqualFold(e, "identity") {
			return errors.New("the request body must not be encoded (Content-Encoding)")
		}
	}
	return nil
}
