#!/usr/bin/env bash
# The servers the remote-backend tests talk to, all on 127.0.0.1:
#
#   sshd        (Debian openssh-server)     SFTP          port ARCA_TEST_SFTP_PORT  (2222)
#   moto_server (PyPI moto[server])         S3, lenient   port ARCA_TEST_S3_MOTO_PORT (9100)
#   s3s-fs      (crates.io s3s-fs 0.14.1)   S3, SigV4     port ARCA_TEST_S3S_PORT   (9101)
#   b2_server   (tests/servers/b2_server.py around b2sdk's RawSimulator)
#                                           B2 native API port ARCA_TEST_B2_PORT    (9102)
#
# Usage: scripts/test-servers.sh start|stop|env|status|check
#   start   install what is missing, (re)start all four, verify each answers, and write
#           $STATE/env: `export VAR=value` lines the tests read (see the end of `start`).
#           Servers already running from an earlier start are stopped first, and every
#           start begins with empty storage.
#   stop    stop them (from the pid files); the install cache is kept.
#   env     print the path of the env file: . "$(scripts/test-servers.sh env)"
#   status  say which are running.
#   check   the longer checks against running servers: S3 feature probes for both S3
#           servers and the B2 server's fault injection (--fail-every).
#
# Directories:
#   state  ${ARCA_TEST_SERVERS_DIR:-REPO/target/test-servers}: config, keys, pid files,
#          logs (logs/NAME.log), server storage, env.
#   cache  ${ARCA_TEST_CACHE:-~/.cache/arca-test}: the Python venv (moto, b2sdk, boto3) and
#          the s3s-fs binary; kept between runs, installed only when missing.
# Other knobs: ARCA_TEST_SERVERS_TIMEOUT (seconds to wait for each server, default 60),
# ARCA_TEST_B2_FAIL_EVERY (start the B2 server with --fail-every N).
#
# Needs: apt-get (as root or via sudo) for openssh-server only when /usr/sbin/sshd is
# missing, python3 with venv (python3-venv is installed when missing), cargo for s3s-fs,
# and the package registries (Debian, PyPI, crates.io); nothing else is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
STATE="${ARCA_TEST_SERVERS_DIR:-$REPO/target/test-servers}"
CACHE="${ARCA_TEST_CACHE:-$HOME/.cache/arca-test}"
TIMEOUT="${ARCA_TEST_SERVERS_TIMEOUT:-60}"

SFTP_PORT="${ARCA_TEST_SFTP_PORT:-2222}"
MOTO_PORT="${ARCA_TEST_S3_MOTO_PORT:-9100}"
S3S_PORT="${ARCA_TEST_S3S_PORT:-9101}"
B2_PORT="${ARCA_TEST_B2_PORT:-9102}"

# Fixed test credentials (moto accepts any; s3s-fs checks SigV4 against these).
MOTO_ACCESS_KEY="arca-moto-access"
MOTO_SECRET_KEY="arca-moto-secret"
S3S_ACCESS_KEY="arca-s3s-access"
S3S_SECRET_KEY="arca-s3s-secret"

# Versions: the B2 server uses b2sdk's internal RawSimulator, so b2sdk is pinned to the
# version it was written against; moto is pinned so its S3 behaviour does not drift.
PY_REQUIREMENTS=("moto[server]==5.2.5" "b2sdk==2.13.1" "boto3")
S3S_VERSION="0.14.1"

VENV="$CACHE/venv"
PY="$VENV/bin/python"
S3S_BIN="$CACHE/s3s-fs/bin/s3s-fs"
SERVERS_DIR="$REPO/tests/servers"
ENV_FILE="$STATE/env"
LOGS="$STATE/logs"
PIDS="$STATE/pids"

log() { printf 'test-servers: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# ---------------------------------------------------------------------------------------
# Installing (each step only when missing)
# ---------------------------------------------------------------------------------------

apt_install() {
    bash "$REPO/scripts/apt-install.sh" "$@"
}

install_openssh() {
    local missing=()
    [ -x /usr/sbin/sshd ] || missing+=(openssh-server)
    command -v sftp >/dev/null && command -v ssh-keygen >/dev/null || missing+=(openssh-client)
    [ ${#missing[@]} -eq 0 ] && return
    log "installing ${missing[*]} (apt)"
    local t0=$SECONDS
    apt_install "${missing[@]}"
    log "installed ${missing[*]} in $((SECONDS - t0))s"
}

install_venv() {
    local stamp="$VENV/.arca-requirements" want
    want="$(printf '%s\n' "${PY_REQUIREMENTS[@]}")"
    if [ -x "$PY" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ] &&
        "$PY" -c 'import moto.server, b2sdk.v2, boto3' 2>/dev/null; then
        return
    fi
    local t0=$SECONDS
    if [ ! -x "$PY" ]; then
        log "creating the Python venv $VENV"
        mkdir -p "$CACHE"
        if ! python3 -m venv "$VENV" 2>/dev/null; then
            # Debian's own python3 needs python3-venv for `-m venv` (with ensurepip).
            rm -rf "$VENV"
            log "installing python3-venv (apt)"
            apt_install python3-venv
            python3 -m venv "$VENV"
        fi
    fi
    log "pip installing ${PY_REQUIREMENTS[*]} into $VENV"
    "$PY" -m pip install -q --disable-pip-version-check "${PY_REQUIREMENTS[@]}"
    printf '%s\n' "$want" >"$stamp"
    log "pip install took $((SECONDS - t0))s"
}

install_s3s() {
    [ -x "$S3S_BIN" ] && return
    command -v cargo >/dev/null || die "cargo is needed to build s3s-fs"
    log "building s3s-fs $S3S_VERSION with cargo install (a few minutes, once per machine)"
    local t0=$SECONDS
    # Its own temporary target directory, never the project's.
    env -u CARGO_TARGET_DIR -u CARGO_BUILD_TARGET_DIR cargo install s3s-fs \
        --version "$S3S_VERSION" --features binary --locked --quiet --root "$CACHE/s3s-fs"
    [ -x "$S3S_BIN" ] || die "cargo install did not produce $S3S_BIN"
    log "built s3s-fs in $((SECONDS - t0))s"
}

# ---------------------------------------------------------------------------------------
# Process helpers
# ---------------------------------------------------------------------------------------

# The pid of server NAME from its pid file, if that process is alive and is still the
# server (its command line contains MATCH), so that a recycled pid is never killed.
server_pid() {
    local name=$1 match=$2 pid
    pid="$(cat "$PIDS/$name.pid" 2>/dev/null)" || return 1
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$match" || return 1
    # A zombie (exited, not yet reaped by its parent) is not running.
    [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ] || return 1
    echo "$pid"
}

# Whether the process just started for server NAME is still alive (right after the fork
# its command line is still this script's, so no match on it here).
started_alive() {
    local pid
    pid="$(cat "$PIDS/$1.pid" 2>/dev/null)" && [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null &&
        [ "$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null)" != "Z" ]
}

stop_server() {
    local name=$1 match=$2 pid
    if pid="$(server_pid "$name" "$match")"; then
        # s3s-fs ignores SIGTERM and stops on SIGINT; the others stop on either.
        kill -TERM "$pid" 2>/dev/null || true
        kill -INT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do
            server_pid "$name" "$match" >/dev/null || break
            sleep 0.1
        done
        if server_pid "$name" "$match" >/dev/null; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
        log "stopped $name (pid $pid)"
    fi
    rm -f "$PIDS/$name.pid"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

check_port_free() {
    local name=$1 port=$2 variable=${3:-}
    if port_in_use "$port"; then
        local who=""
        command -v ss >/dev/null && who="$(ss -ltnpH "sport = :$port" 2>/dev/null || true)"
        die "port $port for $name is already in use${who:+: $who}${variable:+ (choose another with $variable=PORT)}"
    fi
}

# Start server NAME in the background: start_server NAME PORT COMMAND...
start_server() {
    local name=$1 port=$2
    shift 2
    check_port_free "$name" "$port"
    : >"$LOGS/$name.log"
    # fd 9 is the lock of this script: the server must not keep it.
    "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
    echo $! >"$PIDS/$name.pid"
}

fail_with_log() {
    local name=$1
    shift
    log "error: $name: $*"
    log "last lines of $LOGS/$name.log:"
    tail -n 30 "$LOGS/$name.log" >&2 || true
    exit 1
}

# Wait until server NAME accepts connections on PORT.
wait_for_port() {
    local name=$1 port=$2 deadline=$((SECONDS + TIMEOUT))
    until port_in_use "$port"; do
        started_alive "$name" || fail_with_log "$name" "exited while starting"
        [ $SECONDS -lt $deadline ] || fail_with_log "$name" "not listening on port $port after ${TIMEOUT}s"
        sleep 0.2
    done
}

# ---------------------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------------------

start_sshd() {
    local dir="$STATE/ssh" user
    user="$(id -un)"
    mkdir -p "$dir" "$STATE/sftp-root"
    chmod 700 "$dir" "$STATE/sftp-root"
    # Keys are made once per state directory and reused by later starts.
    [ -f "$dir/host_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C arca-test-host -f "$dir/host_ed25519"
    [ -f "$dir/client_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C arca-test-client -f "$dir/client_ed25519"
    cp "$dir/client_ed25519.pub" "$dir/authorized_keys"
    chmod 600 "$dir/authorized_keys"
    # known_hosts in OpenSSH's plain format: "[host]:port keytype key".
    echo "[127.0.0.1]:$SFTP_PORT $(cut -d' ' -f1,2 "$dir/host_ed25519.pub")" >"$dir/known_hosts"
    cat >"$dir/sshd_config" <<EOF
# Private sshd for arca's SFTP tests (written by scripts/test-servers.sh).
ListenAddress 127.0.0.1
Port $SFTP_PORT
HostKey $dir/host_ed25519
PidFile $dir/sshd.pid
AuthorizedKeysFile $dir/authorized_keys
StrictModes no
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
AllowUsers $user
Subsystem sftp internal-sftp
LogLevel VERBOSE
EOF
    # sshd running as root needs its privilege-separation directory.
    if [ "$(id -u)" -eq 0 ] && [ ! -d /run/sshd ]; then
        mkdir -p /run/sshd
        chmod 755 /run/sshd
    fi
    /usr/sbin/sshd -t -f "$dir/sshd_config" || die "sshd rejects $dir/sshd_config"
    start_server sshd "$SFTP_PORT" /usr/sbin/sshd -D -e -f "$dir/sshd_config"
    wait_for_port sshd "$SFTP_PORT"
    # Verify: a real SFTP session with the client key and strict host key checking.
    local out
    if ! out="$(echo "ls -la $STATE/sftp-root" | sftp -b - -F /dev/null -P "$SFTP_PORT" \
        -i "$dir/client_ed25519" -o IdentitiesOnly=yes -o BatchMode=yes \
        -o UserKnownHostsFile="$dir/known_hosts" -o StrictHostKeyChecking=yes \
        -o ConnectTimeout=10 "$user@127.0.0.1" 2>&1)"; then
        fail_with_log sshd "sftp check failed: $out"
    fi
    log "sshd up on 127.0.0.1:$SFTP_PORT (sftp ls ok)"
}

start_moto() {
    start_server moto "$MOTO_PORT" "$VENV/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT"
    wait_for_port moto "$MOTO_PORT"
    "$PY" "$SERVERS_DIR/s3_check.py" --endpoint "http://127.0.0.1:$MOTO_PORT" \
        --access-key "$MOTO_ACCESS_KEY" --secret-key "$MOTO_SECRET_KEY" >"$STATE/moto-check.log" 2>&1 ||
        { cat "$STATE/moto-check.log" >&2; fail_with_log moto "S3 check failed"; }
    log "moto_server up on 127.0.0.1:$MOTO_PORT (bucket create/put/get/delete ok)"
}

start_s3s() {
    mkdir -p "$STATE/s3s-data"
    start_server s3s-fs "$S3S_PORT" "$S3S_BIN" --host 127.0.0.1 --port "$S3S_PORT" \
        --access-key "$S3S_ACCESS_KEY" --secret-key "$S3S_SECRET_KEY" "$STATE/s3s-data"
    wait_for_port s3s-fs "$S3S_PORT"
    "$PY" "$SERVERS_DIR/s3_check.py" --signed --endpoint "http://127.0.0.1:$S3S_PORT" \
        --access-key "$S3S_ACCESS_KEY" --secret-key "$S3S_SECRET_KEY" >"$STATE/s3s-check.log" 2>&1 ||
        { cat "$STATE/s3s-check.log" >&2; fail_with_log s3s-fs "S3 check failed"; }
    log "s3s-fs up on 127.0.0.1:$S3S_PORT (signed put/get ok, wrong secret refused with 403)"
}

start_b2() {
    local creds="$STATE/b2-credentials.json" deadline=$((SECONDS + TIMEOUT))
    rm -f "$creds"
    start_server b2 "$B2_PORT" "$PY" "$SERVERS_DIR/b2_server.py" --host 127.0.0.1 --port "$B2_PORT" \
        --credentials-file "$creds" ${ARCA_TEST_B2_FAIL_EVERY:+--fail-every "$ARCA_TEST_B2_FAIL_EVERY"}
    # The credentials file appears once the server listens.
    until [ -s "$creds" ]; do
        started_alive b2 || fail_with_log b2 "exited while starting"
        [ $SECONDS -lt $deadline ] || fail_with_log b2 "no $creds after ${TIMEOUT}s"
        sleep 0.2
    done
    if [ -z "${ARCA_TEST_B2_FAIL_EVERY:-}" ]; then
        "$PY" "$SERVERS_DIR/b2_server_check.py" --credentials-file "$creds" >"$STATE/b2-check.log" 2>&1 ||
            { tail -n 20 "$STATE/b2-check.log" >&2; fail_with_log b2 "B2 check failed"; }
        log "b2_server up on 127.0.0.1:$B2_PORT (b2sdk upload/list/download/delete ok)"
    else
        log "b2_server up on 127.0.0.1:$B2_PORT with --fail-every $ARCA_TEST_B2_FAIL_EVERY (check skipped)"
    fi
}

# `export NAME=value`, value quoted for the shell.
export_line() { printf 'export %s=%q\n' "$1" "$2"; }

write_env() {
    local creds="$STATE/b2-credentials.json" b2
    # account_id application_key key_id key bucket, one per line.
    b2="$("$PY" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print("\n".join(d[k] for k in ("account_id", "application_key", "key_id", "key", "bucket")))' "$creds")"
    local account_id application_key key_id key bucket
    { read -r account_id; read -r application_key; read -r key_id; read -r key; read -r bucket; } <<<"$b2"
    {
        echo "# Written by scripts/test-servers.sh start; removed by stop."
        export_line ARCA_TEST_SERVERS_DIR "$STATE"
        export_line ARCA_TEST_SFTP_HOST 127.0.0.1
        export_line ARCA_TEST_SFTP_PORT "$SFTP_PORT"
        export_line ARCA_TEST_SFTP_USER "$(id -un)"
        export_line ARCA_TEST_SFTP_KEY "$STATE/ssh/client_ed25519"
        export_line ARCA_TEST_SFTP_KNOWN_HOSTS "$STATE/ssh/known_hosts"
        export_line ARCA_TEST_SFTP_ROOT "$STATE/sftp-root"
        export_line ARCA_TEST_S3_MOTO_ENDPOINT "http://127.0.0.1:$MOTO_PORT"
        export_line ARCA_TEST_S3_MOTO_ACCESS_KEY "$MOTO_ACCESS_KEY"
        export_line ARCA_TEST_S3_MOTO_SECRET_KEY "$MOTO_SECRET_KEY"
        export_line ARCA_TEST_S3S_ENDPOINT "http://127.0.0.1:$S3S_PORT"
        export_line ARCA_TEST_S3S_ACCESS_KEY "$S3S_ACCESS_KEY"
        export_line ARCA_TEST_S3S_SECRET_KEY "$S3S_SECRET_KEY"
        export_line ARCA_TEST_B2_API_URL "http://127.0.0.1:$B2_PORT"
        export_line ARCA_TEST_B2_ACCOUNT_ID "$account_id"
        export_line ARCA_TEST_B2_APPLICATION_KEY "$application_key"
        export_line ARCA_TEST_B2_KEY_ID "$key_id"
        export_line ARCA_TEST_B2_KEY "$key"
        export_line ARCA_TEST_B2_BUCKET "$bucket"
    } >"$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
}

stop_all() {
    rm -f "$ENV_FILE"
    stop_server b2 b2_server.py
    stop_server s3s-fs s3s-fs
    stop_server moto moto_server
    stop_server sshd "$STATE/ssh/sshd_config"
}

cmd_start() {
    local t0=$SECONDS
    install_openssh
    install_venv
    install_s3s
    stop_all
    # All ports free before anything starts; a start that fails stops what it started.
    check_port_free sshd "$SFTP_PORT" ARCA_TEST_SFTP_PORT
    check_port_free moto "$MOTO_PORT" ARCA_TEST_S3_MOTO_PORT
    check_port_free s3s-fs "$S3S_PORT" ARCA_TEST_S3S_PORT
    check_port_free b2 "$B2_PORT" ARCA_TEST_B2_PORT
    trap 'log "start failed: stopping the servers it started"; stop_all' EXIT
    # Every start serves empty storage (moto and B2 are in memory anyway).
    rm -rf "$STATE/s3s-data" "$STATE/sftp-root"
    mkdir -p "$LOGS" "$PIDS"
    start_sshd
    start_moto
    start_s3s
    start_b2
    write_env
    trap - EXIT
    log "all servers up in $((SECONDS - t0))s; env: $ENV_FILE"
}

cmd_status() {
    local name match pid
    for pair in "sshd:$STATE/ssh/sshd_config" moto:moto_server s3s-fs:s3s-fs b2:b2_server.py; do
        name="${pair%%:*}" match="${pair#*:}"
        if pid="$(server_pid "$name" "$match")"; then
            echo "$name: running (pid $pid)"
        else
            echo "$name: stopped"
        fi
    done
}

cmd_check() {
    [ -f "$ENV_FILE" ] || die "servers are not running (no $ENV_FILE); run: $0 start"
    # shellcheck disable=SC1090
    . "$ENV_FILE"
    echo "== moto_server $ARCA_TEST_S3_MOTO_ENDPOINT"
    "$PY" "$SERVERS_DIR/s3_check.py" --features --endpoint "$ARCA_TEST_S3_MOTO_ENDPOINT" \
        --access-key "$ARCA_TEST_S3_MOTO_ACCESS_KEY" --secret-key "$ARCA_TEST_S3_MOTO_SECRET_KEY"
    echo "== s3s-fs $ARCA_TEST_S3S_ENDPOINT"
    "$PY" "$SERVERS_DIR/s3_check.py" --features --signed --endpoint "$ARCA_TEST_S3S_ENDPOINT" \
        --access-key "$ARCA_TEST_S3S_ACCESS_KEY" --secret-key "$ARCA_TEST_S3S_SECRET_KEY"
    echo "== b2_server $ARCA_TEST_B2_API_URL"
    "$PY" "$SERVERS_DIR/b2_server_check.py" --faults
}

main() {
    local cmd="${1:-}"
    case "$cmd" in
    start | stop | check)
        mkdir -p "$STATE"
        # One start/stop at a time per state directory.
        exec 9>"$STATE/.lock"
        flock -w 900 9 || die "another test-servers.sh holds $STATE/.lock"
        case "$cmd" in
        start) cmd_start ;;
        stop) stop_all ;;
        check) cmd_check ;;
        esac
        ;;
    env)
        echo "$ENV_FILE"
        [ -f "$ENV_FILE" ] || { log "servers are not running (no $ENV_FILE); run: $0 start"; exit 1; }
        ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|env|status|check" >&2
        exit 2
        ;;
    esac
}

main "$@"
