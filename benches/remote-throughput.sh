#!/usr/bin/env bash
# Backup and restore throughput to each remote backend over loopback, as a ratio of the
# same to a local repository in the same run (the issue's goal for backup: at least 0.70).
#
#   bash benches/remote-throughput.sh [SOURCE_DIR] [RUNS]
#
# Each backup is followed by `arca restore latest` into tmpfs ($ARCA_BENCH_RESTORE_DIR,
# default /dev/shm/arca-bench-restore), checked against the source with `diff -r`. With
# ARCA_BENCH_BASE=/path/to/another/arca, that binary's restore of the same repository is
# timed too, right before (to compare two versions of restore in one run).
#
# SOURCE_DIR defaults to the Linux 6.1 tree from Debian's linux-source-6.1 package,
# extracted once under $ARCA_BENCH_DIR (default /tmp/arca-bench). Each run makes a fresh
# repository per backend and times one initial `arca backup` (release build, default
# settings); the table shows the median of RUNS (default 3). The test servers are
# started by scripts/test-servers.sh (and stopped at the end). All of it shares the
# machine's cores with the servers: SSH encryption and the S3 servers' request handling
# are part of what is measured.
set -euo pipefail
# A failed restore or diff inside $(timed_restore) must stop the bench too.
shopt -s inherit_errexit
cd "$(dirname "$0")/.."
bench="${ARCA_BENCH_DIR:-/tmp/arca-bench}"
runs="${2:-3}"
mkdir -p "$bench"

if [ -n "${1:-}" ]; then
    src="$(realpath "$1")"
else
    src="$bench/linux-source-6.1"
    if [ ! -d "$src" ]; then
        tarball=/usr/src/linux-source-6.1.tar.xz
        if [ ! -f "$tarball" ]; then
            bash scripts/apt-install.sh linux-source-6.1
        fi
        echo "extracting $tarball" >&2
        tar -xJf "$tarball" -C "$bench"
    fi
fi

bash scripts/build-deps.sh
cargo build --release --locked -p arca-cli >&2
arca="$PWD/target/release/arca"
bash scripts/test-servers.sh start >&2
trap 'bash scripts/test-servers.sh stop >&2' EXIT
# shellcheck disable=SC1090
. "$(bash scripts/test-servers.sh env)"

export ARCA_PASSWORD=bench
# Sets ARCA_REPOSITORY (and credentials) for backend $1 and run $2.
target() {
    local tag="bench-$2-$$"
    case "$1" in
        local) export ARCA_REPOSITORY="$bench/repo-$tag"; rm -rf "$ARCA_REPOSITORY" ;;
        sftp)
            export ARCA_REPOSITORY="sftp://$ARCA_TEST_SFTP_USER@127.0.0.1:$ARCA_TEST_SFTP_PORT$ARCA_TEST_SFTP_ROOT/$tag"
            export ARCA_SFTP_KEY="$ARCA_TEST_SFTP_KEY" ARCA_SFTP_KNOWN_HOSTS="$ARCA_TEST_SFTP_KNOWN_HOSTS" ;;
        s3s)
            export ARCA_REPOSITORY="s3:$ARCA_TEST_S3S_ENDPOINT/$tag/repo"
            export AWS_ACCESS_KEY_ID="$ARCA_TEST_S3S_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ARCA_TEST_S3S_SECRET_KEY" ;;
        moto)
            export ARCA_REPOSITORY="s3:$ARCA_TEST_S3_MOTO_ENDPOINT/$tag/repo"
            export AWS_ACCESS_KEY_ID="$ARCA_TEST_S3_MOTO_ACCESS_KEY" AWS_SECRET_ACCESS_KEY="$ARCA_TEST_S3_MOTO_SECRET_KEY" ;;
        b2)
            export ARCA_REPOSITORY="b2:$ARCA_TEST_B2_BUCKET:/$tag"
            export B2_ACCOUNT_ID="$ARCA_TEST_B2_KEY_ID" B2_APPLICATION_KEY="$ARCA_TEST_B2_KEY" ARCA_B2_API_URL="$ARCA_TEST_B2_API_URL" ;;
    esac
}

read -r -a backends <<< "${ARCA_BENCH_BACKENDS:-local sftp s3s moto}"
size=$(du -sb "$src" | cut -f1)
# Every backup reads the tree from the page cache: read it once before timing.
find "$src" -type f -print0 | xargs -0 cat > /dev/null
restore_dir="${ARCA_BENCH_RESTORE_DIR:-/dev/shm/arca-bench-restore}"
declare -A times rtimes btimes
# Times `$1 restore latest` into $restore_dir, checks it, prints the seconds.
timed_restore() {
    rm -rf "$restore_dir"
    local start end
    start=$(date +%s.%N)
    "$1" restore -q --no-progress latest --target "$restore_dir"
    end=$(date +%s.%N)
    diff -r -q "$restore_dir$src" "$src" >&2
    rm -rf "$restore_dir"
    awk -v a="$start" -v b="$end" 'BEGIN { print b - a }'
}
for run in $(seq "$runs"); do
    # Rotate the order, so that no backend always runs first or last.
    k=$(( (run - 1) % ${#backends[@]} ))
    order=("${backends[@]:k}" "${backends[@]:0:k}")
    for b in "${order[@]}"; do
        target "$b" "$run"
        "$arca" init -q --kdf-memory 8 --kdf-iterations 1
        sync
        start=$(date +%s.%N)
        "$arca" backup -q --no-progress "$src"
        end=$(date +%s.%N)
        t=$(awk -v a="$start" -v b="$end" 'BEGIN { print b - a }')
        times[$b]="${times[$b]:-} $t"
        printf '%s run %s: backup %.2f s\n' "$b" "$run" "$t" >&2
        if [ -n "${ARCA_BENCH_BASE:-}" ]; then
            t=$(timed_restore "$ARCA_BENCH_BASE")
            btimes[$b]="${btimes[$b]:-} $t"
            printf '%s run %s: restore with %s %.2f s\n' "$b" "$run" "$ARCA_BENCH_BASE" "$t" >&2
        fi
        t=$(timed_restore "$arca")
        rtimes[$b]="${rtimes[$b]:-} $t"
        printf '%s run %s: restore %.2f s\n' "$b" "$run" "$t" >&2
        [ "$b" = local ] && rm -rf "$ARCA_REPOSITORY"
    done
    # Free the servers' storage between runs.
    bash scripts/test-servers.sh stop >&2
    bash scripts/test-servers.sh start >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
local_median=$(echo "${times[local]}" | median)
local_restore=$(echo "${rtimes[local]}" | median)
printf '\nsource: %s (%s MiB), %s runs, median seconds\n' "$src" "$((size >> 20))" "$runs"
printf '%-8s %9s %10s %9s %9s %9s' backend backup "MB/s" "vs local" restore "vs local"
[ -n "${ARCA_BENCH_BASE:-}" ] && printf ' %9s %9s' "base" "vs base"
printf '\n'
for b in "${backends[@]}"; do
    m=$(echo "${times[$b]}" | median)
    r=$(echo "${rtimes[$b]}" | median)
    awk -v b="$b" -v m="$m" -v s="$size" -v l="$local_median" -v r="$r" -v lr="$local_restore" \
        'BEGIN { printf "%-8s %9.2f %10.1f %9.2f %9.2f %9.2f", b, m, s / m / 1e6, l / m, r, lr / r }'
    if [ -n "${ARCA_BENCH_BASE:-}" ]; then
        o=$(echo "${btimes[$b]}" | median)
        awk -v o="$o" -v r="$r" 'BEGIN { printf " %9.2f %9.2f", o, r / o }'
    fi
    printf '\n'
done
