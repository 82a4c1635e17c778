#!/usr/bin/env bash
# Installs the system packages building arca needs besides the Rust toolchain: OpenSSL's
# headers and pkg-config, for libssh2 (the SFTP backend), which the ssh2 crate builds
# from source. Idempotent: installs only what is missing (Debian/Ubuntu, apt).
set -euo pipefail
missing=()
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
