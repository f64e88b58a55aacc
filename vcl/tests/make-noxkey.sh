#!/bin/sh
# Generate vcl/wordpress-noxkey.vcl from vcl/wordpress.vcl: drop lines marked
# "# xkey-only" and uncomment lines starting with "#noxkey ".
# Usage: vcl/tests/make-noxkey.sh [SRC [DEST]]   (defaults: the shipped files)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
src=${1:-$here/wordpress.vcl}
dest=${2:-$here/wordpress-noxkey.vcl}
sed -e '/# xkey-only$/d' -e 's/^#noxkey //' "$src" > "$dest.tmp.$$"
mv "$dest.tmp.$$" "$dest"
