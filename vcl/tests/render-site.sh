#!/bin/sh
# Copy a purgebridge VCL file, replacing the body of its marked site region
# (the lines between "# >>> purgebridge ..." and "# <<< purgebridge ...",
# markers kept) with the text read from stdin.
# Usage: render-site.sh SRC DEST < region-body
# Exit status 2 when SRC has no complete region: the contract is broken.
set -eu
src=$1
dest=$2
body=$(cat)
awk -v body="$body" '
    /^# >>> purgebridge / { print; print body; inside = 1; opened++; next }
    /^# <<< purgebridge /  { inside = 0; closed++ }
    !inside { print }
    END { if (opened != 1 || closed != 1 || inside) exit 2 }
' "$src" > "$dest"
