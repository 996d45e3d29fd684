#!/usr/bin/env bash
# Runs the client examples (examples/<lang>/run.sh) against real servers with the module: one
# standalone server (TXU_URL) and a 3-primary cluster (TXU_CLUSTER_URL), on free loopback
# ports, started here and stopped when this script ends, pass or fail.
#
#   bash scripts/examples.sh [lang ...]     (default: every examples/*/run.sh)
#
# TXU_MODULE: the module to load (default target/release/libtxu.so); TXU_SERVER: the server.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
MODULE=${TXU_MODULE:-$ROOT/target/release/libtxu.so}
SERVER=${TXU_SERVER:-redis-server}
CLI=${TXU_CLI:-redis-cli}
[[ -f "$MODULE" ]] || { echo "examples: no module at $MODULE (make build)" >&2; exit 1; }

WORK=$(mktemp -d /tmp/txu-examples.XXXXXX)
PORTS=()
cleanup() {
    for p in "${PORTS[@]}"; do
        "$CLI" -p "$p" shutdown nosave >/dev/null 2>&1 || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT

# A free loopback port (the kernel picks one; a clash with a later bind is retried by start).
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

# Starts a server with the module on a free port, in its own directory; prints the port. Runs
# in a subshell (`$(start)`): the caller records the port for the cleanup.
start() {
    local extra=("$@") port dir
    for _ in 1 2 3 4 5; do
        port=$(free_port)
        dir="$WORK/$port"
        mkdir -p "$dir"
        if "$SERVER" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
            --daemonize yes --logfile "$dir/server.log" --loadmodule "$MODULE" "${extra[@]}" \
            >/dev/null 2>&1; then
            for _ in $(seq 1 100); do
                if "$CLI" -p "$port" ping 2>/dev/null | grep -q PONG; then
                    echo "$port"
                    return 0
                fi
                sleep 0.05
            done
            "$CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true
        fi
    done
    echo "examples: could not start $SERVER" >&2
    return 1
}

# Polls `cmd` until its output contains `want`, for at most 30 s.
wait_for() {
    local want=$1
    shift
    for _ in $(seq 1 300); do
        if "$@" 2>/dev/null | grep -q "$want"; then
            return 0
        fi
        sleep 0.1
    done
    echo "examples: timed out waiting for '$want' from: $*" >&2
    return 1
}

single=$(start)
PORTS+=("$single")
cluster=()
for _ in 1 2 3; do
    p=$(start --cluster-enabled yes --cluster-config-file nodes.conf)
    PORTS+=("$p")
    cluster+=("$p")
done
c1=${cluster[0]} c2=${cluster[1]} c3=${cluster[2]}
"$CLI" --cluster create "127.0.0.1:$c1" "127.0.0.1:$c2" "127.0.0.1:$c3" --cluster-yes >/dev/null
for p in "$c1" "$c2" "$c3"; do
    wait_for "cluster_state:ok" "$CLI" -p "$p" cluster info
done
wait_for "\[OK\] All 16384 slots covered" "$CLI" --cluster check "127.0.0.1:$c1"

export TXU_URL="redis://127.0.0.1:$single"
export TXU_CLUSTER_URL="redis://127.0.0.1:$c1"

langs=("$@")
if ((${#langs[@]} == 0)); then
    for d in examples/*/; do
        [[ -f "$d/run.sh" ]] && langs+=("$(basename "$d")")
    done
fi
failed=()
for lang in "${langs[@]}"; do
    echo "=== examples/$lang"
    if bash "examples/$lang/run.sh"; then
        echo "=== examples/$lang passed"
    else
        echo "=== examples/$lang FAILED"
        failed+=("$lang")
    fi
done
if ((${#failed[@]} > 0)); then
    echo "examples failed: ${failed[*]}" >&2
    exit 1
fi
echo "examples passed: ${langs[*]}"
