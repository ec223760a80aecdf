package jit

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/jitproxy/jitproxy/internal/access"
)

// permissionDoc is a permission as access policies write it: the fields of
// one kind's part, flat. AWS permissions are told by actions.
type permissionDoc struct {
	// Kubernetes
	Verbs           []string `yaml:"verbs"`
	APIGroups       []string `yaml:"apiGroups"`
	ResourceNames   []string `yaml:"resourceNames"`
	NonResourceURLs []string `yaml:"nonResourceURLs"`
	// AWS
	Actions []string `yaml:"actions"`
	Regions []string `yaml:"regions"`
	// Both: Kubernetes resource types, or AWS resource ARNs.
	Resources []string `yaml:"resources"`
}

func (d permissionDoc) kind() string {
	if len(d.Actions) > 0 || len(d.Regions) > 0 {
		return access.KindAWS
	}
	return access.KindKubernetes
}

// permissionsKind is the kind of the first permission, or "".
func permissionsKind(ds []permissionDoc) string {
	if len(ds) == 0 {
		return ""
	}
	return ds[0].kind()
}

// permissions validates the permissions of a policy and converts them. All
// must be of one kind, which is returned.
func permissions(ds []permissionDoc) (string, []access.Permission, error) {
	if len(ds) == 0 {
		return "", nil, errors.New("spec.permissions must list at least one permission")
	}
	kind := permissionsKind(ds)
	var errs []error
	out := make([]access.Permission, 0, len(ds))
	for i, d := range ds {
		where := fmt.Sprintf("spec.permissions[%d]", i)
		if d.kind() != kind {
			errs = append(errs, fmt.Errorf("%s is a %s permission, the first is %s: one policy grants on one kind of target", where, d.kind(), kind))
			continue
		}
		var err error
		var p access.Permission
		if kind == access.KindAWS {
			p, err = d.aws(where)
		} else {
			p, err = d.kubernetes(where)
		}
		errs = append(errs, err)
		out = append(out, p)
	}
	return kind, out, errors.Join(errs...)
}

func (d permissionDoc) kubernetes(where string) (access.Permission, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+format, args...)) }
	if len(d.Verbs) == 0 {
		bad(".verbs is required")
	}
	if len(d.Resources) == 0 && len(d.NonResourceURLs) == 0 {
		bad(" needs resources or nonResourceURLs")
	}
	if len(d.Resources) > 0 && len(d.APIGroups) == 0 {
		bad(".apiGroups is required with resources (\"\" is the core group)")
	}
	for j, n := range d.ResourceNames {
		errs = append(errs, checkName(fmt.Sprintf("%s.resourceNames[%d]", where, j), n))
	}
	for j, u := range d.NonResourceURLs {
		errs = append(errs, checkName(fmt.Sprintf("%s.nonResourceURLs[%d]", where, j), u))
	}
	return access.Permission{Kubernetes: &access.KubernetesPermission{
		Verbs: d.Verbs, APIGroups: d.APIGroups, Resources: d.Resources,
		ResourceNames: d.ResourceNames, NonResourceURLs: d.NonResourceURLs,
	}}, errors.Join(errs...)
}

var (
	// awsActionPattern is an IAM action name with wildcards: "s3:Get*", or "*".
	awsActionPattern = regexp.MustCompile(`^(\*|[a-z0-9*?-]+:[A-Za-z0-9*?]+)$`)
	// awsRegionPattern is a region name such as us-east-1 or us-gov-west-1.
	awsRegionPattern = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
)

func (d permissionDoc) aws(where string) (access.Permission, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(where+format, args...)) }
	if len(d.Verbs)+len(d.APIGroups)+len(d.ResourceNames)+len(d.NonResourceURLs) > 0 {
		bad(": verbs, apiGroups, resourceNames and nonResourceURLs are Kubernetes fields; an AWS permission has actions, resources and regions")
	}
	for j, a := range d.Actions {
		if !awsActionPattern.MatchString(a) {
			bad(".actions[%d] %q is not an IAM action such as s3:GetObject or s3:Get*", j, a)
		}
	}
	if len(d.Actions) == 0 {
		bad(".actions is required")
	}
	if len(d.Resources) == 0 {
		bad(".resources is required: ARNs such as arn:aws:s3:::bucket/*, or \"*\"")
	}
	for j, r := range d.Resources {
		if r != "*" && (!strings.HasPrefix(r, "arn:") || strings.Count(r, ":") < 5 || !printable(r) || len(r) > 2048) {
			bad(".resources[%d] %q is not an ARN (arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE) or \"*\"", j, r)
		}
	}
	for j, r := range d.Regions {
		if !awsRegionPattern.MatchString(r) {
			bad(".regions[%d] %q is not an AWS region such as us-east-1", j, r)
		}
	}
	return access.Permission{AWS: &access.AWSPermission{Actions: d.Actions, Resources: d.Resources, Regions: d.Regions}}, errors.Join(errs...)
}

func printable(s string) bool {
	for _, r := range s {
		if r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}
