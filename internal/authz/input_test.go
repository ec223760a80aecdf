package authz

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

// TestInputIsDerivedFromTheTypes: input.caller, input.action and
// input.grants are the JSON of their types, with every field present (no
// omitempty) and nil slices as empty arrays, and a missing kind part absent.
func TestInputIsDerivedFromTheTypes(t *testing.T) {
	in := Input{
		Caller: access.Caller{Session: "s", Agent: "a", User: "u"},
		Action: access.Action{Kind: access.KindAWS, Target: "aws", Method: "GET", Path: "/b/k",
			AWS: &access.AWSAction{Service: "s3", Action: "s3:GetObject", Region: "us-east-1", Resources: []string{"arn:aws:s3:::b/k"}}},
		Grants: []Grant{{ID: "g", Policy: "p", Target: "aws", Permissions: []access.Permission{
			{AWS: &access.AWSPermission{Actions: []string{"s3:Get*"}, Resources: []string{"*"}}},
		}}},
	}
	got := in.regoValue()
	want := map[string]any{
		"caller": map[string]any{"session": "s", "agent": "a", "user": "u", "groups": []any{}, "auth_method": "", "source_address": ""},
		"action": map[string]any{"kind": "aws", "target": "aws", "method": "GET", "path": "/b/k",
			"aws": map[string]any{"service": "s3", "action": "s3:GetObject", "region": "us-east-1", "account": "", "resources": []any{"arn:aws:s3:::b/k"}}},
		"grants": []any{map[string]any{"id": "g", "policy": "p", "target": "aws", "namespace": "", "permissions": []any{
			map[string]any{"aws": map[string]any{"actions": []any{"s3:Get*"}, "resources": []any{"*"}, "regions": []any{}}},
		}}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("regoValue() (-want +got):\n%s", diff)
	}
	// The field names are the JSON names: every key of the JSON encoding
	// is in the input.
	b, _ := json.Marshal(in.Action)
	var fromJSON map[string]any
	json.Unmarshal(b, &fromJSON)
	for k := range fromJSON {
		if _, ok := got["action"].(map[string]any)[k]; !ok {
			t.Errorf("input.action lacks %q, which its JSON has", k)
		}
	}
}
