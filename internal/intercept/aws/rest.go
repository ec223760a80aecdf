package aws

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/arn"
)

// REST protocols (REST-JSON, REST-XML): the operation is named by the
// method and the path, so each service needs a table of its routes. A
// request that matches no route is refused: jitproxy never guesses.

// route is one operation of a REST service. uri is the operation's
// Smithy http trait (as in the SDK's schemas): literal segments, {Label}
// segments (one whole segment each) and optionally a literal query
// (?find=LayerVersion) that must be present.
type route struct {
	method, uri, op string
	// action is the IAM action when it is not the operation's name.
	action string
	// resources adds the ARNs the operation acts on from the path labels
	// and the query; nil when it names none jitproxy reads.
	resources func(c *call, labels map[string]string, o *operation) error
}

// restService is a REST service's route table.
type restService []route

func (s restService) classify(c *call) (operation, error) {
	segs, err := restSegments(c.r.URL.EscapedPath())
	if err != nil {
		return operation{}, err
	}
	var match, fallback *route
	var labels, fallbackLabels map[string]string
	conflict := false
	for i := range s {
		rt := &s[i]
		if rt.method != c.r.Method {
			continue
		}
		path, lit, _ := strings.Cut(rt.uri, "?")
		l, ok := matchPath(path, segs)
		if !ok {
			continue
		}
		if lit == "" {
			fallback, fallbackLabels = rt, l
			continue
		}
		k, v, _ := strings.Cut(lit, "=")
		switch got, present := c.query[k]; {
		case !present:
		case len(got) == 1 && got[0] == v:
			match, labels = rt, l
		default:
			conflict = true
		}
	}
	if match == nil && !conflict {
		match, labels = fallback, fallbackLabels
	}
	if match == nil {
		return operation{}, fmt.Errorf("jitproxy does not know the %s operation %s %s, so it refuses it", c.service, c.r.Method, c.r.URL.EscapedPath())
	}
	o := operation{action: match.op}
	if match.action != "" {
		o.action = match.action
	}
	if match.resources != nil {
		if err := match.resources(c, labels, &o); err != nil {
			return operation{}, fmt.Errorf("%s %s: %w", c.service, match.op, err)
		}
	}
	return o, nil
}

// restSegments splits a REST path into its decoded segments. Paths that
// intermediaries could read another way are refused: encoded slashes,
// empty segments and dot segments. One trailing slash is ignored (older
// SDKs send /2015-03-31/functions/).
func restSegments(escaped string) ([]string, error) {
	if !strings.HasPrefix(escaped, "/") {
		return nil, errors.New("the path must be absolute")
	}
	if strings.Contains(strings.ToLower(escaped), "%2f") {
		return nil, errors.New("encoded slashes are not allowed in the path")
	}
	p := strings.TrimSuffix(escaped[1:], "/")
	if p == "" {
		return nil, nil
	}
	segs := strings.Split(p, "/")
	for i, e := range segs {
		s, err := url.PathUnescape(e)
		if err != nil || s == "" || s == "." || s == ".." {
			return nil, errors.New("the path must not contain empty, '.' or '..' segments or malformed escapes")
		}
		segs[i] = s
	}
	return segs, nil
}

// matchPath matches decoded path segments against a URI template.
func matchPath(template string, segs []string) (map[string]string, bool) {
	tsegs := strings.Split(strings.TrimPrefix(template, "/"), "/")
	if len(tsegs) != len(segs) {
		return nil, false
	}
	labels := map[string]string{}
	for i, t := range tsegs {
		if strings.HasPrefix(t, "{") && strings.HasSuffix(t, "}") {
			labels[t[1:len(t)-1]] = segs[i]
		} else if t != segs[i] {
			return nil, false
		}
	}
	return labels, true
}

// Lambda (REST-JSON). Operations on a function name it by {FunctionName}:
// a name, a partial ARN (ACCOUNT:function:NAME) or an ARN, each with an
// optional :QUALIFIER (version or alias); the Qualifier query parameter
// is the other way to give the qualifier.

var (
	lambdaFunctionName = regexp.MustCompile(`^[A-Za-z0-9_-]{1,140}$`)
	lambdaQualifier    = regexp.MustCompile(`^(\$LATEST|[A-Za-z0-9_-]{1,128})$`)
)

// lambdaFunction adds the function the request acts on:
// arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER], with account
// "*" when the request gives only the name.
func lambdaFunction(c *call, labels map[string]string, o *operation) error {
	v := labels["FunctionName"]
	account, name, qualifier := unknownAccount, v, ""
	parts := strings.Split(v, ":")
	switch {
	case strings.HasPrefix(v, "arn:"):
		a, err := parseARN(c, v, "lambda", true)
		if err != nil {
			return fmt.Errorf("FunctionName: %w", err)
		}
		parts = strings.Split(a.Resource, ":")
		if a.AccountID == "" || len(parts) < 2 || len(parts) > 3 || parts[0] != "function" {
			return fmt.Errorf("FunctionName %q is not a function ARN", v)
		}
		account, name = a.AccountID, parts[1]
		if len(parts) == 3 {
			qualifier = parts[2]
		}
	case len(parts) >= 3 && parts[1] == "function":
		// ACCOUNT:function:NAME[:QUALIFIER]
		if len(parts) > 4 || !accountPattern.MatchString(parts[0]) {
			return fmt.Errorf("FunctionName %q is not a function name or ARN", v)
		}
		account, name = parts[0], parts[2]
		if len(parts) == 4 {
			qualifier = parts[3]
		}
	case len(parts) == 2:
		name, qualifier = parts[0], parts[1]
	case len(parts) > 2:
		return fmt.Errorf("FunctionName %q is not a function name or ARN", v)
	}
	if !lambdaFunctionName.MatchString(name) {
		return fmt.Errorf("FunctionName %q is not a function name or ARN", v)
	}
	if q := c.query.Get("Qualifier"); q != "" {
		if len(c.query["Qualifier"]) > 1 || (qualifier != "" && qualifier != q) {
			return errors.New("the function's qualifier is given twice")
		}
		qualifier = q
	}
	res := "function:" + name
	if qualifier != "" || strings.HasSuffix(v, ":") {
		if !lambdaQualifier.MatchString(qualifier) {
			return fmt.Errorf("qualifier %q is not a version or alias", qualifier)
		}
		res += ":" + qualifier
	}
	o.add(arn.ARN{Partition: c.partition, Service: "lambda", Region: c.region, AccountID: account, Resource: res}.String(), account)
	return nil
}

// lambdaTagged adds the resource named by an ARN in {Resource}.
func lambdaTagged(c *call, labels map[string]string, o *operation) error {
	a, err := parseARN(c, labels["Resource"], "lambda", true)
	if err != nil || a.AccountID == "" {
		return fmt.Errorf("%q is not the ARN of a Lambda resource", labels["Resource"])
	}
	o.add(a.String(), a.AccountID)
	return nil
}

var lambdaRoutes = restService{
	{"GET", "/2015-03-31/functions", "ListFunctions", "", nil},
	{"POST", "/2015-03-31/functions", "CreateFunction", "", nil},
	{"GET", "/2015-03-31/functions/{FunctionName}", "GetFunction", "", lambdaFunction},
	{"DELETE", "/2015-03-31/functions/{FunctionName}", "DeleteFunction", "", lambdaFunction},
	{"POST", "/2015-03-31/functions/{FunctionName}/invocations", "Invoke", "InvokeFunction", lambdaFunction},
	{"POST", "/2021-11-15/functions/{FunctionName}/response-streaming-invocations", "InvokeWithResponseStream", "InvokeFunction", lambdaFunction},
	{"POST", "/2014-11-13/functions/{FunctionName}/invoke-async", "InvokeAsync", "", lambdaFunction},
	{"GET", "/2015-03-31/functions/{FunctionName}/configuration", "GetFunctionConfiguration", "", lambdaFunction},
	{"PUT", "/2015-03-31/functions/{FunctionName}/configuration", "UpdateFunctionConfiguration", "", lambdaFunction},
	{"PUT", "/2015-03-31/functions/{FunctionName}/code", "UpdateFunctionCode", "", lambdaFunction},
	{"GET", "/2015-03-31/functions/{FunctionName}/versions", "ListVersionsByFunction", "", lambdaFunction},
	{"POST", "/2015-03-31/functions/{FunctionName}/versions", "PublishVersion", "", lambdaFunction},
	{"GET", "/2015-03-31/functions/{FunctionName}/aliases", "ListAliases", "", lambdaFunction},
	{"POST", "/2015-03-31/functions/{FunctionName}/aliases", "CreateAlias", "", lambdaFunction},
	{"GET", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", "GetAlias", "", lambdaFunction},
	{"PUT", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", "UpdateAlias", "", lambdaFunction},
	{"DELETE", "/2015-03-31/functions/{FunctionName}/aliases/{Name}", "DeleteAlias", "", lambdaFunction},
	{"GET", "/2015-03-31/functions/{FunctionName}/policy", "GetPolicy", "", lambdaFunction},
	{"POST", "/2015-03-31/functions/{FunctionName}/policy", "AddPermission", "", lambdaFunction},
	{"DELETE", "/2015-03-31/functions/{FunctionName}/policy/{StatementId}", "RemovePermission", "", lambdaFunction},
	{"GET", "/2019-09-30/functions/{FunctionName}/concurrency", "GetFunctionConcurrency", "", lambdaFunction},
	{"PUT", "/2017-10-31/functions/{FunctionName}/concurrency", "PutFunctionConcurrency", "", lambdaFunction},
	{"DELETE", "/2017-10-31/functions/{FunctionName}/concurrency", "DeleteFunctionConcurrency", "", lambdaFunction},
	{"GET", "/2021-10-31/functions/{FunctionName}/url", "GetFunctionUrlConfig", "", lambdaFunction},
	{"POST", "/2021-10-31/functions/{FunctionName}/url", "CreateFunctionUrlConfig", "", lambdaFunction},
	{"PUT", "/2021-10-31/functions/{FunctionName}/url", "UpdateFunctionUrlConfig", "", lambdaFunction},
	{"DELETE", "/2021-10-31/functions/{FunctionName}/url", "DeleteFunctionUrlConfig", "", lambdaFunction},
	{"GET", "/2021-10-31/functions/{FunctionName}/urls", "ListFunctionUrlConfigs", "", lambdaFunction},
	{"GET", "/2019-09-25/functions/{FunctionName}/event-invoke-config", "GetFunctionEventInvokeConfig", "", lambdaFunction},
	{"GET", "/2015-03-31/event-source-mappings", "ListEventSourceMappings", "", nil},
	{"GET", "/2016-08-19/account-settings", "GetAccountSettings", "", nil},
	{"GET", "/2018-10-31/layers", "ListLayers", "", nil},
	{"GET", "/2018-10-31/layers?find=LayerVersion", "GetLayerVersionByArn", "GetLayerVersion", nil},
	{"GET", "/2017-03-31/tags/{Resource}", "ListTags", "", lambdaTagged},
	{"POST", "/2017-03-31/tags/{Resource}", "TagResource", "", lambdaTagged},
	{"DELETE", "/2017-03-31/tags/{Resource}", "UntagResource", "", lambdaTagged},
}

// Route 53 (REST-XML, global). Its ARNs have no region and no account:
// arn:aws:route53:::hostedzone/ID, change/ID, healthcheck/ID.

var route53ID = regexp.MustCompile(`^[A-Za-z0-9-]{1,64}$`)

// route53Resource returns a function that adds the resource TYPE/{label}.
func route53Resource(typ, label string) func(*call, map[string]string, *operation) error {
	return func(c *call, labels map[string]string, o *operation) error {
		id := labels[label]
		if !route53ID.MatchString(id) {
			return fmt.Errorf("%q is not a valid %s ID", id, typ)
		}
		o.add(arn.ARN{Partition: c.partition, Service: "route53", Resource: typ + "/" + id}.String(), "")
		return nil
	}
}

// route53Tagged adds the resource of the tags API
// (/tags/{ResourceType}/{ResourceId}).
func route53Tagged(c *call, labels map[string]string, o *operation) error {
	switch typ := labels["ResourceType"]; typ {
	case "hostedzone", "healthcheck":
		return route53Resource(typ, "ResourceId")(c, labels, o)
	default:
		return fmt.Errorf("resource type %q is not hostedzone or healthcheck", typ)
	}
}

var (
	r53Zone   = route53Resource("hostedzone", "Id")
	r53ZoneID = route53Resource("hostedzone", "HostedZoneId")
	r53Health = route53Resource("healthcheck", "HealthCheckId")
)

var route53Routes = restService{
	{"GET", "/2013-04-01/hostedzone", "ListHostedZones", "", nil},
	{"POST", "/2013-04-01/hostedzone", "CreateHostedZone", "", nil},
	{"GET", "/2013-04-01/hostedzone/{Id}", "GetHostedZone", "", r53Zone},
	{"POST", "/2013-04-01/hostedzone/{Id}", "UpdateHostedZoneComment", "", r53Zone},
	{"DELETE", "/2013-04-01/hostedzone/{Id}", "DeleteHostedZone", "", r53Zone},
	{"GET", "/2013-04-01/hostedzone/{HostedZoneId}/rrset", "ListResourceRecordSets", "", r53ZoneID},
	{"POST", "/2013-04-01/hostedzone/{HostedZoneId}/rrset", "ChangeResourceRecordSets", "", r53ZoneID},
	{"GET", "/2013-04-01/hostedzone/{HostedZoneId}/dnssec", "GetDNSSEC", "", r53ZoneID},
	{"GET", "/2013-04-01/hostedzonecount", "GetHostedZoneCount", "", nil},
	{"GET", "/2013-04-01/hostedzonesbyname", "ListHostedZonesByName", "", nil},
	{"GET", "/2013-04-01/hostedzonesbyvpc", "ListHostedZonesByVPC", "", nil},
	{"GET", "/2013-04-01/change/{Id}", "GetChange", "", route53Resource("change", "Id")},
	{"GET", "/2013-04-01/healthcheck", "ListHealthChecks", "", nil},
	{"POST", "/2013-04-01/healthcheck", "CreateHealthCheck", "", nil},
	{"GET", "/2013-04-01/healthcheck/{HealthCheckId}", "GetHealthCheck", "", r53Health},
	{"POST", "/2013-04-01/healthcheck/{HealthCheckId}", "UpdateHealthCheck", "", r53Health},
	{"DELETE", "/2013-04-01/healthcheck/{HealthCheckId}", "DeleteHealthCheck", "", r53Health},
	{"GET", "/2013-04-01/healthcheck/{HealthCheckId}/status", "GetHealthCheckStatus", "", r53Health},
	{"GET", "/2013-04-01/healthcheck/{HealthCheckId}/lastfailurereason", "GetHealthCheckLastFailureReason", "", r53Health},
	{"GET", "/2013-04-01/healthcheckcount", "GetHealthCheckCount", "", nil},
	{"GET", "/2013-04-01/checkeripranges", "GetCheckerIpRanges", "", nil},
	{"GET", "/2013-04-01/geolocations", "ListGeoLocations", "", nil},
	{"GET", "/2013-04-01/geolocation", "GetGeoLocation", "", nil},
	{"GET", "/2013-04-01/accountlimit/{Type}", "GetAccountLimit", "", nil},
	{"GET", "/2013-04-01/tags/{ResourceType}/{ResourceId}", "ListTagsForResource", "", route53Tagged},
	{"POST", "/2013-04-01/tags/{ResourceType}/{ResourceId}", "ChangeTagsForResource", "", route53Tagged},
}
