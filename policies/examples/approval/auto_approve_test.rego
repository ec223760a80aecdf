package jitproxy.approval_test

import data.jitproxy.approval

night := {
	"policy": "night-reader",
	"duration_seconds": 900,
	"reason": "INC-4711: payments pods restarting",
	"requester": {"name": "olga", "groups": ["oncall"]},
	"permissions": [{"kubernetes": {"verbs": ["get", "list", "watch"], "apiGroups": [""], "resources": ["pods"]}}],
}

test_short_night_read_approved if {
	"night-read" in approval.auto_approve with input as night
}

test_longer_waits_for_people if {
	count(approval.auto_approve) == 0 with input as object.union(night, {"duration_seconds": 1800})
}

test_no_incident_waits if {
	count(approval.auto_approve) == 0 with input as object.union(night, {"reason": "curious"})
}

test_not_oncall_waits if {
	count(approval.auto_approve) == 0 with input as object.union(night, {"requester": {"name": "dev", "groups": ["developers"]}})
}

test_write_verb_waits if {
	perms := [{"kubernetes": {"verbs": ["get", "delete"], "apiGroups": [""], "resources": ["pods"]}}]
	count(approval.auto_approve) == 0 with input as object.union(night, {"permissions": perms})
}

test_other_policy_waits if {
	count(approval.auto_approve) == 0 with input as object.union(night, {"policy": "team-editor"})
}

test_aws_permission_waits if {
	perms := [{"aws": {"actions": ["s3:GetObject"], "resources": ["*"]}}]
	count(approval.auto_approve) == 0 with input as object.union(night, {"permissions": perms})
}
