package authz

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/google/go-cmp/cmp"

	"github.com/jitproxy/jitproxy/internal/access"
)

func TestExplain(t *testing.T) {
	policy := `package jitproxy.authz

permit contains g.id if {
	some g in input.grants
	trace(sprintf("grant %s", [g.id]))
	input.action.kubernetes.verb == "get"
}

forbid contains "no deletes" if input.action.kubernetes.verb == "delete"
`
	e, err := New(context.Background(), Config{Policies: fstest.MapFS{"authz.rego": {Data: []byte(policy)}}})
	if err != nil {
		t.Fatal(err)
	}
	in := func(verb string) Input {
		return Input{
			Action: access.Action{Kind: access.KindKubernetes, Kubernetes: &access.KubernetesAction{Verb: verb}},
			Grants: NewGrantSet(Grant{ID: "g-1"}),
		}
	}
	tests := []struct {
		name, verb, level string
		wantAllowed       bool
		want, wantNot     []string
	}{
		{name: "notes", verb: "get", level: ExplainNotes, wantAllowed: true, want: []string{"Note \"grant g-1\"", "authz.rego:5"}, wantNot: []string{"Eval "}},
		{name: "full", verb: "delete", level: ExplainFull, want: []string{"Enter data.jitproxy.authz.forbid", "authz.rego:9     | | | | Eval input.action.kubernetes.verb = \"delete\""}},
		{name: "fails", verb: "delete", level: ExplainFails, want: []string{"Fail id = data.jitproxy.authz.permit"}, wantNot: []string{"Enter data.jitproxy.authz.forbid"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			d, err := e.Explain(context.Background(), in(tt.verb), tt.level, &buf)
			if err != nil {
				t.Fatal(err)
			}
			want, _ := e.Decide(context.Background(), in(tt.verb))
			if diff := cmp.Diff(want, d); diff != "" {
				t.Errorf("decision differs from Decide's (-want +got):\n%s", diff)
			}
			if d.Allowed != tt.wantAllowed {
				t.Errorf("allowed = %t, want %t", d.Allowed, tt.wantAllowed)
			}
			for _, s := range tt.want {
				if !strings.Contains(buf.String(), s) {
					t.Errorf("explanation lacks %q:\n%s", s, buf.String())
				}
			}
			for _, s := range tt.wantNot {
				if strings.Contains(buf.String(), s) {
					t.Errorf("explanation has %q:\n%s", s, buf.String())
				}
			}
		})
	}
	if _, err := e.Explain(context.Background(), in("get"), "everything", &bytes.Buffer{}); err == nil {
		t.Error("Explain with an unknown level succeeded")
	}
}
