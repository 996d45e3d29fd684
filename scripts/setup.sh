#!/usr/bin/env bash
# Install what building and testing txu needs, and only what is missing.
# Idempotent; prints nothing when everything is already present.
# Never leaves the system redis service running.
set -euo pipefail

PACKAGES=(redis-server libclang-dev chromium chromium-driver)

log() { printf 'setup: %s\n' "$*" >&2; }

have_pkg() {
    dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'
}

missing=()
for p in "${PACKAGES[@]}"; do
    if ! have_pkg "$p"; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} > 0)); then
    if ! command -v apt-get >/dev/null 2>&1; then
        log "missing packages: ${missing[*]}, and apt-get is not available; install them by hand"
        exit 1
    fi
    if [[ $(id -u) -eq 0 ]]; then
        SUDO=()
    elif command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        log "missing packages: ${missing[*]}; not root and sudo is not available"
        exit 1
    fi
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    # The package may start the system service on port 6379: we never want it.
    if [[ " ${missing[*]} " == *" redis-server "* ]]; then
        "${SUDO[@]}" service redis-server stop >/dev/null 2>&1 || true
        if command -v systemctl >/dev/null 2>&1; then
            "${SUDO[@]}" systemctl disable --now redis-server >/dev/null 2>&1 || true
        fi
    fi
fi

if ! command -v cargo >/dev/null 2>&1 && [[ -x "$HOME/.cargo/bin/cargo" ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null 2>&1; then
    log "cargo not found: install Rust with rustup (https://rustup.rs) and re-run"
    exit 1
fi
