package ocsf

import (
	"strings"

	"github.com/jitproxy/jitproxy/internal/audit"
)

// managedPolicy is the managed_entity type_id Policy.
const managedPolicy = 5

// policyLoaded maps a policy set put in force, at start or by a reload, to
// Entity Management, Activate: the set is not created or changed by the
// event, it becomes the one jitproxy enforces (OCSF: "a change of state of
// the engine"). The entity is the whole set, in data under the native
// names; its policy is the Rego authorization policies, identified by
// their digest, which a change of any file changes. The access policies'
// names and versions are in data and the message.
func policyLoaded(e audit.Event) record {
	r := policyActivation(e, "policies loaded", false)
	r.setStatus(statusSuccess)
	return r
}

// policyRejected maps a policy set a reload read and refused to the same
// activation, failed: the set in force stays. status_detail is why; the
// entity is the set that was refused, as far as it could be read.
func policyRejected(e audit.Event) record {
	r := policyActivation(e, "policies rejected, the set in force stays", true)
	r.setStatus(statusFailure)
	r.setSeverity(severityLow)
	if o := e.Outcome; o != nil && o.Error != "" {
		r.StatusDetail = o.Error
		r.Message += ": " + o.Error
	}
	return r
}

// policyActivation is the Entity Management, Activate record of a policy
// set, without its status.
func policyActivation(e audit.Event, what string, rejected bool) record {
	r := newRecord(e, classEntityManagement, entityActivate, "")
	r.Actor = controlActor(e.Actor)
	r.Entity = &managedEntity{Name: "jitproxy policies", TypeID: managedPolicy, Type: "Policy"}
	r.Message = what
	if ps := e.Policies; ps != nil {
		r.Entity.Data = ps
		if ps.AuthzDigest != "" {
			r.Entity.Policy = &policy{UID: ps.AuthzDigest, Name: "authz", Type: "Rego"}
		}
		if ps.Trigger != "" {
			r.Message += " (" + ps.Trigger + ")"
		}
		r.Message += ": " + policySummary(ps, rejected)
	}
	return r
}

// policySummary names the policies of a set for people: "authz sha256
// 1f2e3d4c5b6a (embedded); access payments-debug version 3f2a9b0c1d2e on
// prod (embedded)". Of a rejected set, the Rego files may be "unread" and
// the access policies "unparsed".
func policySummary(ps *audit.PolicySet, rejected bool) string {
	var b strings.Builder
	digest := ps.AuthzDigest
	if len(digest) > 12 {
		digest = digest[:12]
	}
	if digest == "" {
		digest = "unread"
	}
	b.WriteString("authz sha256 " + digest)
	if ps.AuthzSource != "" {
		b.WriteString(" (" + ps.AuthzSource + ")")
	}
	b.WriteString("; access")
	switch {
	case ps.Access == nil && rejected:
		b.WriteString(" unparsed")
	case len(ps.Access) == 0:
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

// lockEvent maps a lock's creation and its removal to Entity Management,
// Create and Delete: the entity is the lock (name its ID, type "Lock",
// data the lock under the native names); the message says what it locks
// and why. Who locked or unlocked is the actor (jitproxy for a lock that
// expired).
func lockEvent(e audit.Event) record {
	activity, verb := entityCreate, "created"
	if e.Type == audit.TypeLockRemoved {
		activity, verb = entityDelete, "removed"
	}
	r := newRecord(e, classEntityManagement, activity, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Message = "lock " + verb
	if l := e.Lock; l != nil {
		r.Entity = &managedEntity{UID: l.ID, Name: l.ID, TypeID: activityOther, Type: "Lock", Data: l}
		r.Metadata.CorrelationUID = l.ID
		r.Message = "lock " + l.ID + " on " + l.Target() + " " + verb
		if l.Reason != "" {
			r.Message += ": " + l.Reason
		}
	}
	return r
}
