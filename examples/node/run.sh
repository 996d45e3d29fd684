#!/usr/bin/env bash
# Runs the Node.js examples against TXU_URL (a server with the txu module) and TXU_CLUSTER_URL
# (one node of a cluster with the module). Installs the pinned clients into ./node_modules
# first (npm ci from package-lock.json) when they are missing or the lock file changed.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
: "${TXU_URL:?set TXU_URL, e.g. redis://127.0.0.1:6379}"
: "${TXU_CLUSTER_URL:?set TXU_CLUSTER_URL, e.g. redis://127.0.0.1:7000}"

stamp=node_modules/.txu-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
    npm ci --no-audit --no-fund --loglevel=error
    echo "$want" >"$stamp"
fi

status=0
example() {
    local name=$1
    shift
    echo "--- $name"
    if node "$@"; then
        echo "PASS $name"
    else
        echo "FAIL $name"
        status=1
    fi
}
example node_redis-4 node_redis.mjs 4
example node_redis-5 node_redis.mjs 5
example ioredis ioredis.mjs
exit "$status"
