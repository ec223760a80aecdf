package rbacconv

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	rbacclient "k8s.io/client-go/kubernetes/typed/rbac/v1"
)

// RBAC is a set of RBAC objects: the roles and the bindings that grant
// them. The zero RBAC is empty.
type RBAC struct {
	Roles               []rbacv1.Role
	ClusterRoles        []rbacv1.ClusterRole
	RoleBindings        []rbacv1.RoleBinding
	ClusterRoleBindings []rbacv1.ClusterRoleBinding
}

// Add appends the objects of o to r.
func (r *RBAC) Add(o RBAC) {
	r.Roles = append(r.Roles, o.Roles...)
	r.ClusterRoles = append(r.ClusterRoles, o.ClusterRoles...)
	r.RoleBindings = append(r.RoleBindings, o.RoleBindings...)
	r.ClusterRoleBindings = append(r.ClusterRoleBindings, o.ClusterRoleBindings...)
}

// ReadCluster lists every Role, ClusterRole, RoleBinding and
// ClusterRoleBinding the client may see, in namespace ("" for all; the
// cluster-scoped kinds are listed either way). An error from a list is
// returned, naming the kind.
func ReadCluster(ctx context.Context, c rbacclient.RbacV1Interface, namespace string) (RBAC, error) {
	var r RBAC
	roles, err := c.Roles(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return RBAC{}, fmt.Errorf("list roles: %w", err)
	}
	r.Roles = roles.Items
	crs, err := c.ClusterRoles().List(ctx, metav1.ListOptions{})
	if err != nil {
		return RBAC{}, fmt.Errorf("list clusterroles: %w", err)
	}
	r.ClusterRoles = crs.Items
	rbs, err := c.RoleBindings(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return RBAC{}, fmt.Errorf("list rolebindings: %w", err)
	}
	r.RoleBindings = rbs.Items
	crbs, err := c.ClusterRoleBindings().List(ctx, metav1.ListOptions{})
	if err != nil {
		return RBAC{}, fmt.Errorf("list clusterrolebindings: %w", err)
	}
	r.ClusterRoleBindings = crbs.Items
	return r, nil
}

// maxListDepth bounds how deeply Lists may nest in a manifest.
const maxListDepth = 4

// ReadManifests reads the RBAC objects of a stream of YAML or JSON
// manifests, as kubectl apply -f takes them: documents separated by "---",
// and Lists (kind List, RoleList, ...) of objects. Objects of other kinds
// are skipped, and so are empty documents. An RBAC kind of an apiVersion
// other than rbac.authorization.k8s.io/v1, or a document that cannot be
// decoded, is an error naming file and document; the first such error
// ends the reading.
func ReadManifests(file string, data []byte) (RBAC, error) {
	var r RBAC
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for i := 1; ; i++ {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return r, nil
		}
		if err != nil {
			return RBAC{}, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
		if err := r.addObject(raw, 0); err != nil {
			return RBAC{}, fmt.Errorf("%s: document %d: %w", file, i, err)
		}
	}
}

// rbacGroupVersion is the only RBAC API version read.
var rbacGroupVersion = rbacv1.SchemeGroupVersion.String()

func (r *RBAC) addObject(raw json.RawMessage, depth int) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	var head struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(raw, &head); err != nil {
		return fmt.Errorf("decode object: %w", err)
	}
	rbacKinds := []string{"Role", "ClusterRole", "RoleBinding", "ClusterRoleBinding"}
	switch {
	case strings.HasSuffix(head.Kind, "List"):
		if depth >= maxListDepth {
			return fmt.Errorf("lists nested more than %d deep", maxListDepth)
		}
		for j, item := range head.Items {
			if err := r.addObject(item, depth+1); err != nil {
				return fmt.Errorf("%s item %d: %w", head.Kind, j, err)
			}
		}
		return nil
	case !slices.Contains(rbacKinds, head.Kind):
		return nil
	case head.APIVersion != rbacGroupVersion:
		return fmt.Errorf("%s of apiVersion %q: only %s is read", head.Kind, head.APIVersion, rbacGroupVersion)
	}
	var err error
	switch head.Kind {
	case "Role":
		var o rbacv1.Role
		if err = json.Unmarshal(raw, &o); err == nil {
			r.Roles = append(r.Roles, o)
		}
	case "ClusterRole":
		var o rbacv1.ClusterRole
		if err = json.Unmarshal(raw, &o); err == nil {
			r.ClusterRoles = append(r.ClusterRoles, o)
		}
	case "RoleBinding":
		var o rbacv1.RoleBinding
		if err = json.Unmarshal(raw, &o); err == nil {
			r.RoleBindings = append(r.RoleBindings, o)
		}
	case "ClusterRoleBinding":
		var o rbacv1.ClusterRoleBinding
		if err = json.Unmarshal(raw, &o); err == nil {
			r.ClusterRoleBindings = append(r.ClusterRoleBindings, o)
		}
	}
	if err != nil {
		return fmt.Errorf("decode %s: %w", head.Kind, err)
	}
	return nil
}
