#!/usr/bin/env bash
# Builds the examples (cargo fetches the pinned `redis` crate on the first run; later runs
# rebuild nothing and take about a second) into examples/rust/target, then runs every
# example. Prints "PASS <example>" or "FAIL <example>" for each; exits 0 only if all passed.
#   TXU_URL          a standalone server with txu loaded, e.g. redis://127.0.0.1:6379
#   TXU_CLUSTER_URL  one node of a cluster whose primaries all load txu
# Usage: run.sh [example ...]   (default: all of src/bin/*.rs)
set -euo pipefail
cd "$(dirname "$0")"
: "${TXU_URL:?set TXU_URL to a server with the txu module, e.g. redis://127.0.0.1:6379}"
: "${TXU_CLUSTER_URL:?set TXU_CLUSTER_URL to a node of a cluster with the txu module}"
export TXU_URL TXU_CLUSTER_URL
export CARGO_TARGET_DIR="$PWD/target" # never the txu package's target dir

cargo build --release --quiet --locked --bins

examples=("$@")
if [ ${#examples[@]} -eq 0 ]; then
  for f in src/bin/*.rs; do examples+=("$(basename "$f" .rs)"); done
fi
failed=0
for ex in "${examples[@]}"; do
  echo "== $ex"
  if "target/release/$ex"; then
    echo "PASS $ex"
  else
    echo "FAIL $ex"
    failed=1
  fi
done
exit $failed
