#!/usr/bin/env bash
# Installs Debian packages: `bash scripts/apt-install.sh PKG...` (nothing without
# arguments). As root, or through sudo otherwise. The scripts that need system packages
# decide what is missing and call this.
set -euo pipefail
[ $# -gt 0 ] || exit 0
echo "installing $*" >&2
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "$@" >/dev/null
