//go:build tools

// Package tools pins the MinIO server the integration tests build.
package tools

import _ "github.com/minio/minio"
