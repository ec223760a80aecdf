#!/usr/bin/env bash
# Installs the Debian packages the integration tests run, where missing:
# redis-server and etcd-server (etcd 3.4).
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v etcd >/dev/null || missing+=(etcd-server)
if [ ${#missing[@]} -eq 0 ]; then
	echo "packages: redis-server and etcd are installed"
	exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "packages: installing ${missing[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
