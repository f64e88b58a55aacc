#!/usr/bin/env bash
# Builds the release, all of one version, into OUTDIR (default dist/):
#   purgebridge-V-py3-none-any.whl   the relay: pip install it into a virtualenv (VCL files included)
#   purgebridge-V.tar.gz             its sdist (the wheel above is built from it, so it is complete)
#   purgebridge-V.zip                the WordPress plugin (Plugins -> Add New -> Upload, or wp plugin install)
#   purgebridge-V-production.tar.gz  what an operator installs beside them: contrib/ (systemd unit, example env
#                                    file, Prometheus rules, Grafana dashboard), vcl/*.vcl and the operations docs
#   SHA256SUMS
# The build runs on a copy of the checkout's files (tracked and new, not ignored ones), so nothing is written
# into the checkout but OUTDIR. It refuses to build when the versions differ or a generated file is stale.
#
#   bash release/build.sh [OUTDIR]
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
out="$(realpath -m "${1:-$repo/dist}")"
py="${PYTHON:-}"
if [ -z "$py" ]; then
  if [ -x "$repo/.venv/bin/python" ]; then py="$repo/.venv/bin/python"; else py=python3; fi
fi
"$py" -c 'import build' 2>/dev/null || { echo "release: the 'build' module is missing for $py (pip install build; bash .ci/setup installs it)" >&2; exit 2; }

version="$(sed -n 's/^__version__ = "\(.*\)"$/\1/p' "$repo/purgebridge/__init__.py")"
plugin_version="$(sed -n 's/^ \* Version: *//p' "$repo/wp-plugin/purgebridge/purgebridge.php" | head -n 1)"
if [ -z "$version" ] || [ "$version" != "$plugin_version" ]; then
  echo "release: relay version '$version' (purgebridge/__init__.py) differs from plugin version '$plugin_version' (wp-plugin/purgebridge/purgebridge.php)" >&2
  exit 2
fi
bash "$repo/release/sync-vcl.sh" --check
if ! (cd "$repo" && "$py" -m purgebridge.config.env_example | cmp -s - contrib/purgebridge.env); then
  echo "release: contrib/purgebridge.env is stale (python -m purgebridge.config.env_example > contrib/purgebridge.env)" >&2
  exit 2
fi

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
(cd "$repo" && git ls-files -z --cached --others --exclude-standard | while IFS= read -r -d '' f; do
   [ -e "$f" ] && printf '%s\0' "$f"; done | tar --null -T - -cf -) | tar -xf - -C "$stage/" 
mkdir -p "$out"
rm -f "$out/purgebridge-$version"*
# sdist first, then the wheel from that sdist: a file missing from the sdist fails here, not on a user's machine
"$py" -m build --sdist --wheel --outdir "$out" "$stage" >"$stage.build.log" 2>&1 || { cat "$stage.build.log" >&2; rm -f "$stage.build.log"; exit 1; }
rm -f "$stage.build.log"

bash "$repo/wp-plugin/bin/build-zip.sh" "$out/purgebridge-$version.zip" >/dev/null

prod="$stage/purgebridge-$version-production"
mkdir -p "$prod/docs" "$prod/vcl"
cp -r "$stage/contrib" "$prod/contrib"
cp "$stage"/vcl/*.vcl "$prod/vcl/"
cp "$stage"/docs/{operations,configuration,cli,vcl,wordpress,security,scaling}.md "$prod/docs/"
cp "$stage/README.md" "$prod/README.md"
echo "$version" > "$prod/VERSION"
tar -C "$stage" --owner=0 --group=0 --sort=name -czf "$out/purgebridge-$version-production.tar.gz" "purgebridge-$version-production"

(cd "$out" && sha256sum "purgebridge-$version"-py3-none-any.whl "purgebridge-$version.tar.gz" \
   "purgebridge-$version.zip" "purgebridge-$version-production.tar.gz" > SHA256SUMS)
echo "release: purgebridge $version in $out"
(cd "$out" && sed 's/^[0-9a-f]*  /  /' SHA256SUMS)
