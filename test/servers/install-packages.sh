#!/usr/bin/env bash
# Installs the Debian packages the integration tests run, where missing:
# redis-server and redis-sentinel, etcd-server (etcd 3.4), rsyslog with rsyslog-gnutls (its
# TLS driver) and, only where no aws command is on PATH at all (any aws-cli
# 1 or 2 will do), awscli (2.9); chromium (headless, for the approval
# page's browser test) with fonts-liberation.
set -euo pipefail
missing=()
command -v redis-server >/dev/null || missing+=(redis-server)
command -v redis-sentinel >/dev/null || missing+=(redis-sentinel)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v aws >/dev/null || missing+=(awscli)
command -v chromium >/dev/null || missing+=(chromium fonts-liberation)
# rsyslogd is in /usr/sbin, which a user's PATH may lack.
command -v rsyslogd >/dev/null || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
# The TLS driver is a module, not a command.
ls /usr/lib/*/rsyslog/lmnsd_gtls.so >/dev/null 2>&1 || missing+=(rsyslog-gnutls)
if [ ${#missing[@]} -eq 0 ]; then
	echo "packages: redis-server, redis-sentinel, etcd, rsyslog (with gtls), aws and chromium are installed"
	exit 0
fi
sudo=""
[ "$(id -u)" -eq 0 ] || sudo=sudo
export DEBIAN_FRONTEND=noninteractive
echo "packages: installing ${missing[*]}"
$sudo apt-get update -qq
$sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
