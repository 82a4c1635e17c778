#!/usr/bin/env bash
# arca side by side with its peers on the same data, in the same run (issue 6's table).
#
#   bash benches/compare.sh [RUNS]            # default 3 runs
#   ARCA_COMPARE_TOOLS="arca restic" bash benches/compare.sh 1
#
# Installs what it compares against, idempotently: restic and borgbackup from Debian,
# bupstash with `cargo install bupstash --locked` (cached under $ARCA_COMPARE_CACHE,
# default ~/.cache/arca-bench). Prepares the corpora under $ARCA_BENCH_DIR (default
# /tmp/arca-bench): the Linux 6.1 tree from Debian's linux-source-6.1 package, and a
# 1 GiB file concatenated from the ELF files under /usr and the Rust toolchain (sorted by
# path, so the same machine builds the same file), plus a copy with one byte inserted at
# offset 4096. Then benches/compare.py runs every step for every tool, interleaved
# (A B C, A B C, ...), restores into tmpfs ($ARCA_COMPARE_TMPFS, default /dev/shm), checks
# every restore against the source and prints the table with medians, min-max and
# arca's ratio to the best peer. Run by hand, not in CI (it takes 10-20 minutes a run).
#
# arca opens its repositories with a generated secret (`key add --new-secret-file`), the
# README's setting for scheduled jobs; ARCA_COMPARE_UNLOCK=password makes every arca
# command derive its key from the password instead (Argon2id: 32 MiB, ~0.15 s each).
set -euo pipefail
cd "$(dirname "$0")/.."
bench="${ARCA_BENCH_DIR:-/tmp/arca-bench}"
cache="${ARCA_COMPARE_CACHE:-$HOME/.cache/arca-bench}"
tools="${ARCA_COMPARE_TOOLS:-arca bupstash restic borg}"
mkdir -p "$bench" "$cache"

missing=()
case " $tools " in *" restic "*) command -v restic >/dev/null || missing+=(restic) ;; esac
case " $tools " in *" borg "*) command -v borg >/dev/null || missing+=(borgbackup) ;; esac
[ -f /usr/src/linux-source-6.1.tar.xz ] || [ -d "$bench/linux-source-6.1" ] || missing+=(linux-source-6.1)
command -v diff >/dev/null || missing+=(diffutils)
[ -x /usr/bin/time ] || missing+=(time)
case " $tools " in
    *" bupstash "*)
        if [ ! -x "$cache/bupstash/bin/bupstash" ]; then
            dpkg -s libsodium-dev >/dev/null 2>&1 || missing+=(libsodium-dev)
            command -v pkg-config >/dev/null || missing+=(pkg-config)
        fi ;;
esac
bash scripts/apt-install.sh "${missing[@]}"
if [[ " $tools " == *" bupstash "* ]] && [ ! -x "$cache/bupstash/bin/bupstash" ]; then
    echo "building bupstash (once; cached in $cache/bupstash)" >&2
    cargo install bupstash --locked --root "$cache/bupstash" >&2
fi

src="$bench/linux-source-6.1"
if [ ! -d "$src" ]; then
    echo "extracting linux-source-6.1" >&2
    tar -xJf /usr/src/linux-source-6.1.tar.xz -C "$bench"
fi

big="$bench/binaries.bin"
if [ ! -f "$big" ] || [ "$(stat -c %s "$big")" -ne 1073741824 ]; then
    echo "building $big from the ELF files under /usr and the Rust toolchain" >&2
    roots=(/usr "$(rustc --print sysroot)")
    # `file` would be slower than reading four bytes.
    find "${roots[@]}" -xdev -type f -size +16k -print0 2>/dev/null | sort -z \
        | python3 -c '
import sys
out = open(sys.argv[1], "wb")
left = 1 << 30
for name in sys.stdin.buffer.read().split(b"\0"):
    if not name or left == 0:
        continue
    try:
        with open(name, "rb") as f:
            if f.read(4) != b"\x7fELF":
                continue
            f.seek(0)
            data = f.read(left)
    except OSError:
        continue
    out.write(data)
    left -= len(data)
if left:
    sys.exit("not enough ELF files: %d bytes short" % left)
' "$big.tmp"
    mv "$big.tmp" "$big"
    rm -f "$bench/binaries-shifted.bin"
fi
shifted="$bench/binaries-shifted.bin"
if [ ! -f "$shifted" ]; then
    { head -c 4096 "$big"; printf 'X'; tail -c +4097 "$big"; } > "$shifted.tmp"
    mv "$shifted.tmp" "$shifted"
fi

bash scripts/build-deps.sh
cargo build --release --locked -p arca-cli >&2

export PATH="$cache/bupstash/bin:$PATH"
exec python3 benches/compare.py --runs "${1:-3}" --tools "$tools" --source "$src" \
    --big "$big" --shifted "$shifted" --work "$bench/compare" \
    --tmpfs "${ARCA_COMPARE_TMPFS:-/dev/shm}/arca-compare" --arca "$PWD/target/release/arca" \
    --arca-unlock "${ARCA_COMPARE_UNLOCK:-secret}"
