#!/usr/bin/env bash
# Builds arca and runs a real backup and restore of a directory on a local repository,
# then verifies the restored copy and the repository. Usage:
#   scripts/quickstart.sh [DIRECTORY]     (default: this source tree)
set -euo pipefail
cd "$(dirname "$0")/.."
src="$(realpath "${1:-.}")"
bash scripts/build-deps.sh
cargo build --release --locked -p arca-cli
arca="$PWD/target/release/arca"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
export ARCA_REPOSITORY="$work/repo"
printf 'quickstart-%s\n' "$RANDOM$RANDOM" > "$work/password"
chmod 600 "$work/password"
export ARCA_PASSWORD_FILE="$work/password"

echo "== arca init"
"$arca" init
echo "== arca backup $src"
"$arca" backup "$src" --exclude '/**/target' --exclude '**/.git'
echo "== arca backup $src (again: nothing changed, nothing is read)"
"$arca" backup "$src" --exclude '/**/target' --exclude '**/.git'
echo "== arca snapshots"
"$arca" snapshots
echo "== arca restore latest"
"$arca" restore latest --target "$work/restore"
echo "== comparing the restored copy with $src"
diff -r --no-dereference -x target -x .git "$src" "$work/restore$src"
echo "== arca check --read-data"
"$arca" check --read-data
echo "quickstart OK: backed up, restored and verified $src"
