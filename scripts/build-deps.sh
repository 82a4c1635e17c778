#!/usr/bin/env bash
# Installs the system packages building arca needs besides the Rust toolchain: OpenSSL's
# headers and pkg-config, for libssh2 (the SFTP backend), which the ssh2 crate builds
# from source. Idempotent: installs only what is missing (Debian/Ubuntu, apt).
set -euo pipefail
missing=()
dpkg -s libssl-dev >/dev/null 2>&1 || missing+=(libssl-dev)
command -v pkg-config >/dev/null || missing+=(pkg-config)
bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
