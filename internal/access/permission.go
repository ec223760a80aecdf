package access

import (
	"encoding/json"
	"errors"
)

// Kind returns the kind of target p applies to (KindKubernetes or KindAWS),
// or "" when p has no part or more than one.
func (p Permission) Kind() string {
	switch {
	case p.Kubernetes != nil && p.AWS == nil:
		return KindKubernetes
	case p.AWS != nil && p.Kubernetes == nil:
		return KindAWS
	}
	return ""
}

// UnmarshalJSON reads a Permission, and also the flat form of a
// Kubernetes permission ({"verbs": [...], "apiGroups": [...], ...}) that
// grants stored before permissions had kinds were written in.
func (p *Permission) UnmarshalJSON(b []byte) error {
	var v struct {
		Kubernetes *KubernetesPermission `json:"kubernetes"`
		AWS        *AWSPermission        `json:"aws"`
		KubernetesPermission
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	*p = Permission{Kubernetes: v.Kubernetes, AWS: v.AWS}
	if v.Verbs != nil {
		if p.Kubernetes != nil || p.AWS != nil {
			return errors.New("permission has both a kind and flat Kubernetes fields")
		}
		k := v.KubernetesPermission
		p.Kubernetes = &k
	}
	return nil
}
