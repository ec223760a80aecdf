package ocsf

import (
	"github.com/jitproxy/jitproxy/internal/audit"
)

// sessionEvent maps the start and end of an agent session to a Logon and
// a Logoff of the session's user to jitproxy.
func sessionEvent(e audit.Event) record {
	activity := authLogon
	if e.Type == audit.TypeSessionEnded {
		activity = authLogoff
	}
	r := newRecord(e, classAuthentication, activity, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Service = &service{Name: systemName}
	r.Message = "session"
	if s := e.Session; s != nil {
		r.Metadata.CorrelationUID = s.ID
		r.User = humanUser(s.User, s.Groups)
		r.Session = &session{UID: s.ID, ExpirationTime: millis(s.ExpiresAt)}
		if activity == authLogon {
			r.Session.CreatedTime = r.Time
		}
		r.Unmapped.Agent = s.Agent
		r.Message += " " + s.ID + " of " + s.User
		if s.Agent != "" {
			r.Message += " (" + s.Agent + ")"
		}
	}
	if activity == authLogon {
		r.Message += " created"
	} else {
		r.Message += " ended"
	}
	if e.Actor != nil {
		r.Message += " by " + e.Actor.Name
	}
	return r
}

// grantChange maps the steps of a grant request that do not change what
// anyone may do (requested, approved by one approver, denied) to Entity
// Management of the grant.
func grantChange(e audit.Event) record {
	activity, verb := entityUpdate, "approved"
	switch e.Type {
	case audit.TypeGrantRequested:
		activity, verb = entityCreate, "requested"
	case audit.TypeGrantDenied:
		verb = "denied"
	}
	r := newRecord(e, classEntityManagement, activity, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Message = "grant"
	if g := e.Grant; g != nil {
		r.Metadata.CorrelationUID = g.ID
		r.Entity = &managedEntity{UID: g.ID, TypeID: activityOther, Type: "Grant", Data: g}
		if g.User != "" {
			r.Entity.User = humanUser(g.User, nil)
		}
		if g.Policy != "" {
			r.Entity.Policy = &policy{Name: g.Policy, Version: g.Version}
		}
		if activity == entityCreate {
			r.Comment = g.Reason
		}
		r.Message += " " + g.ID + " of " + g.User + " under " + g.Policy
	}
	r.Message += " " + verb
	if e.Actor != nil {
		r.Message += " by " + e.Actor.Name
	}
	return r
}

// grantAccess maps the start and end of a grant's effect (activated;
// revoked or expired) to User Access Management: privileges assigned to
// and revoked from the grant's user. The privilege is the access policy
// the grant was made under.
func grantAccess(e audit.Event) record {
	activity, verb := accessRevoke, "revoked"
	switch e.Type {
	case audit.TypeGrantActivated:
		activity, verb = accessAssign, "activated"
	case audit.TypeGrantExpired:
		verb = "expired"
	case audit.TypeGrantSuspended:
		verb = "suspended"
	case audit.TypeGrantResumed:
		activity, verb = accessAssign, "resumed"
	}
	r := newRecord(e, classUserAccess, activity, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Privileges = []string{}
	r.Message = "grant"
	if g := e.Grant; g != nil {
		r.Metadata.CorrelationUID = g.ID
		r.User = humanUser(g.User, nil)
		priv := g.Policy
		if priv == "" {
			priv = "grant " + g.ID
		}
		r.Privileges = []string{priv}
		if g.Target != "" {
			r.Resources = []resource{{Name: g.Target, Namespace: g.Namespace, Type: "target", RoleID: 1, Role: "Target"}}
		}
		r.Unmapped.Grant = g
		r.Message += " " + g.ID + " of " + g.User + " under " + g.Policy
	}
	r.Message += " " + verb
	if e.Actor != nil && e.Type != audit.TypeGrantExpired {
		r.Message += " by " + e.Actor.Name
	}
	switch g := e.Grant; {
	case g == nil:
	case e.Type == audit.TypeGrantSuspended && g.Suspended != "":
		r.Message += ": " + g.Suspended
	case e.Type == audit.TypeGrantRevoked && g.EndReason != "":
		r.Message += ": " + g.EndReason
	}
	return r
}

// credentialEvent maps the minting and the release of a credential for a
// grant to Entity Management of the credential: created, deleted.
func credentialEvent(e audit.Event) record {
	activity, verb := entityCreate, "minted"
	if e.Type == audit.TypeCredentialReleased {
		activity, verb = entityDelete, "released"
	}
	r := newRecord(e, classEntityManagement, activity, "")
	r.setStatus(statusSuccess)
	r.Actor = controlActor(e.Actor)
	r.Message = "credential"
	if c := e.Credential; c != nil {
		name := c.Subject
		if name == "" {
			name = c.Provider
		}
		r.Entity = &managedEntity{Name: name, TypeID: activityOther, Type: "Credential", Data: c}
		r.Message += " " + name + " from " + c.Provider
	}
	if g := e.Grant; g != nil {
		r.Metadata.CorrelationUID = g.ID
		r.Unmapped.Grant = g
		r.Message += " for grant " + g.ID
	}
	r.Message += " " + verb
	return r
}
