#!/usr/bin/env bash
# Installs the system tools the end-to-end tests drive besides arca itself (GNU tar and
# unzip unpack `arca dump --archive` output). Idempotent: installs only what is missing.
set -euo pipefail
missing=()
command -v tar >/dev/null || missing+=(tar)
command -v unzip >/dev/null || missing+=(unzip)
bash "$(dirname "$0")/apt-install.sh" "${missing[@]}"
