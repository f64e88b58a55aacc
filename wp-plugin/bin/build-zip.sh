#!/usr/bin/env bash
# Builds an installable purgebridge.zip: one top-level folder "purgebridge/"
# (what Plugins → Add New → Upload and `wp plugin install <zip>` expect) with
# the plugin's files and a translation template freshly generated from its
# sources. Nothing is written into the checkout: the plugin is staged in a temporary directory and the
# zip goes where OUTPUT says (release/build.sh: dist/purgebridge-<version>.zip, next to the relay's wheel).
#
#   bash wp-plugin/bin/build-zip.sh OUTPUT.zip
set -euo pipefail
repo="$(cd "$(dirname "$0")/../.." && pwd)"
if [ $# -ne 1 ] || [ "${1%.zip}" = "$1" ]; then
  echo "usage: bash wp-plugin/bin/build-zip.sh OUTPUT.zip   (or bash release/build.sh for the whole release)" >&2
  exit 2
fi
out="$(realpath -m "$1")"
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

cp -r "$repo/wp-plugin/purgebridge" "$stage/purgebridge"
find "$stage/purgebridge" -name '.*' -prune -exec rm -rf {} +
bash "$repo/wp-plugin/bin/make-pot.sh" "$stage/purgebridge/languages/purgebridge.pot" >/dev/null
mkdir -p "$(dirname "$out")"
rm -f "$out"
python3 - "$stage" "$out" <<'PY'
import os, sys, zipfile
stage, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
    for root, dirs, files in os.walk(os.path.join(stage, "purgebridge")):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(root, name)
            zf.write(path, os.path.relpath(path, stage))
PY
echo "build-zip: $out ($(python3 -c 'import sys,zipfile; print(len(zipfile.ZipFile(sys.argv[1]).namelist()))' "$out") files)"
