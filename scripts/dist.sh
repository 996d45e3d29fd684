#!/usr/bin/env bash
# `make dist`: the release module as people deploy it, stripped, named by version, OS and
# architecture, with its SHA-256 beside it; then checked by loading it into a fresh server.
#
#   target/dist/libtxu-<version>-<os>-<arch>.so
#   target/dist/libtxu-<version>-<os>-<arch>.so.sha256   (sha256sum format)
#
# TXU_SERVER: the server that checks it (default redis-server).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
SERVER=${TXU_SERVER:-redis-server}
CLI=${TXU_CLI:-redis-cli}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}

version=$(cargo metadata --no-deps --format-version 1 |
    python3 -c 'import json,sys; print(next(p["version"] for p in json.load(sys.stdin)["packages"] if p["name"]=="txu"))')
os=$(uname -s | tr '[:upper:]' '[:lower:]')
arch=$(uname -m)
name="libtxu-$version-$os-$arch.so"
out="$TARGET/dist"

cargo build --release
mkdir -p "$out"
strip --strip-unneeded -o "$out/$name" "$TARGET/release/libtxu.so"
(cd "$out" && sha256sum "$name" > "$name.sha256")

# Load it into a fresh server on a free port: MODULE LIST must show txu at this version.
expected=$(python3 -c "v='$version'.split('-')[0].split('.'); print(int(v[0])*10000+int(v[1])*100+int(v[2]))")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()')
dir=$(mktemp -d /tmp/txu-dist.XXXXXX)
trap '"$CLI" -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$dir"' EXIT
"$SERVER" --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no --daemonize yes \
    --logfile "$dir/server.log" --loadmodule "$out/$name" >/dev/null
for _ in $(seq 1 100); do
    "$CLI" -p "$port" ping 2>/dev/null | grep -q PONG && break
    sleep 0.05
done
list=$("$CLI" -p "$port" module list)
if ! tr '\n' ' ' <<<"$list" | grep -q "name txu ver $expected "; then
    echo "dist: $name does not load as txu ver $expected; MODULE LIST said: $list" >&2
    cat "$dir/server.log" >&2
    exit 1
fi
size=$(stat -c %s "$out/$name")
echo "dist: $out/$name ($size bytes), loads as txu ver $expected"
cat "$out/$name.sha256"
