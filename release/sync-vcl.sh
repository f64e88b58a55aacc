#!/usr/bin/env bash
# Copies the operator's VCL (vcl/*.vcl, the one source of truth, where the .vtc tests run) into
# purgebridge/vcl/, the package data `purgebridge demo` and the local cluster use from an installed
# wheel. Plain copies, not symlinks: a wheel holds files. tests/unit/test_package_data.py fails while
# the copies differ, and release/build.sh refuses to build.
#
#   bash release/sync-vcl.sh           # copy
#   bash release/sync-vcl.sh --check   # exit 1 naming each copy that differs
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
status=0
for source in "$repo"/vcl/*.vcl; do
  copy="$repo/purgebridge/vcl/$(basename "$source")"
  if [ "${1:-}" = "--check" ]; then
    cmp -s "$source" "$copy" || { echo "sync-vcl: $copy differs from $source (run: bash release/sync-vcl.sh)" >&2; status=1; }
  else
    cp "$source" "$copy"
  fi
done
exit "$status"
