package access

import (
	"encoding/json"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPermissionJSON(t *testing.T) {
	k8s := Permission{Kubernetes: &KubernetesPermission{Verbs: []string{"get"}, APIGroups: []string{""}, Resources: []string{"pods"}}}
	aws := Permission{AWS: &AWSPermission{Actions: []string{"s3:GetObject"}, Resources: []string{"arn:aws:s3:::b/*"}}}
	tests := []struct {
		name    string
		in      string
		want    Permission
		wantErr bool
	}{
		{"kubernetes", `{"kubernetes":{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}}`, k8s, false},
		{"aws", `{"aws":{"actions":["s3:GetObject"],"resources":["arn:aws:s3:::b/*"]}}`, aws, false},
		// Grants stored before permissions had kinds.
		{"flat kubernetes", `{"verbs":["get"],"apiGroups":[""],"resources":["pods"]}`, k8s, false},
		{"flat and kind", `{"verbs":["get"],"aws":{"actions":["s3:*"]}}`, Permission{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got Permission
			err := json.Unmarshal([]byte(tt.in), &got)
			if (err != nil) != tt.wantErr {
				t.Fatalf("Unmarshal() error = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Unmarshal() (-want +got):\n%s", diff)
			}
			// What is written reads back the same.
			b, err := json.Marshal(got)
			if err != nil {
				t.Fatal(err)
			}
			var again Permission
			if err := json.Unmarshal(b, &again); err != nil || !cmp.Equal(got, again) {
				t.Errorf("round trip of %s = %+v, %v", b, again, err)
			}
		})
	}
	if k8s.Kind() != KindKubernetes || aws.Kind() != KindAWS || (Permission{}).Kind() != "" {
		t.Error("Kind() is wrong")
	}
}
