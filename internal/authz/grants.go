package authz

import (
	"crypto/sha256"
	"reflect"

	"github.com/open-policy-agent/opa/v1/ast"
)

// GrantSet is a caller's active grants, converted once to what policies
// see (input.grants) and fingerprinted for the decision cache. Build one
// per set of grants and reuse it for every request the set decides: the
// data plane keeps one per tunnel until the caller's grants change, so
// that a decision costs the same whatever the number of grants. A GrantSet
// is immutable and safe for concurrent use. The nil *GrantSet is the empty
// set.
type GrantSet struct {
	grants []Grant
	val    ast.Value
	digest [sha256.Size]byte // of the key encoding of grants
}

// NewGrantSet converts grants. The grants must not be modified afterwards.
func NewGrantSet(grants ...Grant) *GrantSet {
	v := reflect.ValueOf(grants)
	return &GrantSet{grants: grants, val: toValue(v), digest: sha256.Sum256(appendKey(nil, v))}
}

// Len returns the number of grants.
func (s *GrantSet) Len() int {
	if s == nil {
		return 0
	}
	return len(s.grants)
}

// Grants returns the grants. The caller must not modify them.
func (s *GrantSet) Grants() []Grant {
	if s == nil {
		return nil
	}
	return s.grants
}

var emptyGrants = NewGrantSet()

func (s *GrantSet) value() ast.Value {
	if s == nil {
		return emptyGrants.val
	}
	return s.val
}

func (s *GrantSet) fingerprint() *[sha256.Size]byte {
	if s == nil {
		return &emptyGrants.digest
	}
	return &s.digest
}
