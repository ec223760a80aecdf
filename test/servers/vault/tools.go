//go:build tools

// Package tools pins the Vault server the integration tests build.
package tools

import _ "github.com/hashicorp/vault"
