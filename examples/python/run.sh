#!/usr/bin/env bash
# Installs redis-py into examples/python/.venv (once; again only when requirements.txt
# changes) and runs every example. Prints "PASS <example>" or "FAIL <example>" for each;
# exits 0 only if all passed.
#   TXU_URL          a standalone server with txu loaded, e.g. redis://127.0.0.1:6379
#   TXU_CLUSTER_URL  one node of a cluster whose primaries all load txu
# Usage: run.sh [example.py ...]   (default: all of them)
set -euo pipefail
cd "$(dirname "$0")"
: "${TXU_URL:?set TXU_URL to a server with the txu module, e.g. redis://127.0.0.1:6379}"
: "${TXU_CLUSTER_URL:?set TXU_CLUSTER_URL to a node of a cluster with the txu module}"
export TXU_URL TXU_CLUSTER_URL

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt .venv/installed-requirements.txt; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
  cp requirements.txt .venv/installed-requirements.txt
fi

examples=("$@")
[ ${#examples[@]} -gt 0 ] || examples=(txu_sync.py txu_asyncio.py txu_cluster.py)
failed=0
for ex in "${examples[@]}"; do
  echo "== $ex"
  # -W error::DeprecationWarning: an example must not lean on what redis-py deprecates
  if .venv/bin/python -W error::DeprecationWarning "$ex"; then
    echo "PASS $ex"
  else
    echo "FAIL $ex"
    failed=1
  fi
done
exit $failed
