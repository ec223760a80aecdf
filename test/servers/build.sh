#!/usr/bin/env bash
# Builds the servers the integration tests run into .cache/bin (git-ignored),
# from the Go module proxy, once: a build is reused while the pinned
# go.mod/go.sum of its module are unchanged.
#
#   kube-apiserver  k8s.io/kubernetes v1.34.4 (test/servers/kube)
#   vault           github.com/hashicorp/vault v1.19.5 (test/servers/vault)
#   minio           github.com/minio/minio, a pseudo-version (test/servers/minio)
#   oidc-provider   github.com/zitadel/oidc/v3 v3.52.0's provider with its example
#                   login form (test/servers/oidc), for the approval page's browser test
#   kubectl         same module as kube-apiserver, only where none is installed
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
bin="$root/.cache/bin"
mkdir -p "$bin"

build() {
	local name=$1 dir=$2 pkg=$3 estimate=$4
	local stamp="$bin/.$name.stamp" want
	want=$(cat "$root/$dir/go.mod" "$root/$dir/go.sum" | sha256sum | cut -c1-16)
	if [ -x "$bin/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
		echo "$name: already built ($bin/$name)"
		return
	fi
	echo "$name: building from the Go module proxy ($estimate, once; then cached in .cache/bin)..."
	local start=$SECONDS
	(cd "$root/$dir" && go build -trimpath -ldflags='-s -w' -o "$bin/$name.tmp" "$pkg")
	mv "$bin/$name.tmp" "$bin/$name"
	echo "$want" >"$stamp"
	echo "$name: built in $((SECONDS - start))s"
}

build kube-apiserver test/servers/kube k8s.io/kubernetes/cmd/kube-apiserver "about 4 minutes on two cores"
build vault test/servers/vault github.com/hashicorp/vault "about 8 minutes on two cores"
build minio test/servers/minio github.com/minio/minio "about 3 minutes on two cores"
build oidc-provider test/servers/oidc . "under a minute"
if ! command -v kubectl >/dev/null; then
	build kubectl test/servers/kube k8s.io/kubernetes/cmd/kubectl "about 2 minutes"
fi
