package ocsf

import (
	"strings"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// managedPolicy is the managed_entity type_id Policy.
const managedPolicy = 5

// policyLoaded maps the policy set a jitproxy starts with to Entity
// Management, Activate: the set is not created or changed by the event,
// it becomes the one jitproxy enforces (OCSF: "a change of state of the
// engine"). The entity is the whole set, in data under the native names;
// its policy is the Rego authorization policies, identified by their
// digest, which a change of any file changes. The access policies' names
// and versions are in data and the message.
func policyLoaded(e audit.Event) record {
	r := newRecord(e, classEntityManagement, entityActivate, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Entity = &managedEntity{Name: "jitproxy policies", TypeID: managedPolicy, Type: "Policy"}
	r.Message = "policies loaded"
	if ps := e.Policies; ps != nil {
		r.Entity.Data = ps
		if ps.AuthzDigest != "" {
			r.Entity.Policy = &policy{UID: ps.AuthzDigest, Name: "authz", Type: "Rego"}
		}
		r.Message += ": " + policySummary(ps)
	}
	return r
}

// policySummary names the policies of a set for people: "authz sha256
// 1f2e3d4c5b6a (embedded); access payments-debug version 3f2a9b0c1d2e on
// prod (embedded)".
func policySummary(ps *audit.PolicySet) string {
	var b strings.Builder
	digest := ps.AuthzDigest
	if len(digest) > 12 {
		digest = digest[:12]
	}
	b.WriteString("authz sha256 " + digest)
	if ps.AuthzSource != "" {
		b.WriteString(" (" + ps.AuthzSource + ")")
	}
	b.WriteString("; access")
	if len(ps.Access) == 0 {
		b.WriteString(" none")
	}
	for i, p := range ps.Access {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(" " + p.Name + " version " + p.Version)
		if p.Target != "" {
			b.WriteString(" on " + p.Target)
		}
	}
	if ps.AccessSource != "" {
		b.WriteString(" (" + ps.AccessSource + ")")
	}
	return b.String()
}
