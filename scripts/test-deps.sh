#!/usr/bin/env bash
# Installs the system tools the end-to-end tests drive besides arca itself (GNU tar and
# unzip unpack `arca dump --archive` output). Idempotent: installs only what is missing.
set -euo pipefail
missing=()
command -v tar >/dev/null || missing+=(tar)
command -v unzip >/dev/null || missing+=(unzip)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
