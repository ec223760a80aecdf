// Package policies embeds jitproxy's default policies: the Rego
// authorization policies under authz/ and the example access policies under
// access/. A directory given in the configuration replaces either set.
package policies

import (
	"embed"
	"io/fs"
)

//go:embed authz/*.rego access/*.yaml
var files embed.FS

// Authz returns the embedded Rego policies, tests included.
func Authz() fs.FS { return sub("authz") }

// Access returns the embedded example access policies.
func Access() fs.FS { return sub("access") }

func sub(dir string) fs.FS {
	f, err := fs.Sub(files, dir)
	if err != nil {
		panic(err) // dir is a constant that exists in the embedded tree.
	}
	return f
}
