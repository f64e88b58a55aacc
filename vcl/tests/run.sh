#!/bin/sh
# Run every .vtc next to this script with varnishtest (VTC_JOBS in parallel,
# default 2), print one line per test and then "N passed, N failed".
# Exit status: 0 all passed, 1 some failed, 2 varnishtest missing.
# Extra arguments go to varnishtest for each test (e.g. -v).
set -u
here=$(cd "$(dirname "$0")" && pwd)
# Debian installs varnishd in /usr/sbin; varnishtest finds it through PATH.
PATH="$PATH:/usr/sbin:/usr/local/sbin"; export PATH
if ! command -v varnishtest >/dev/null 2>&1; then
    echo "varnishtest not found: install Debian's 'varnish' package" >&2
    exit 2
fi
logdir=$(mktemp -d "${TMPDIR:-/tmp}/purgebridge-vtc.XXXXXX")
trap 'rm -rf "$logdir"' EXIT INT TERM
export PB_VTC_LOGDIR="$logdir" PB_VTC_ARGS="$*"

# One varnishtest per file; its exit status is kept in <name>.rc.
ls "$here"/*.vtc | xargs -P "${VTC_JOBS:-2}" -I{} sh -c '
    name=$(basename "$1" .vtc)
    varnishtest -q $PB_VTC_ARGS "$1" >"$PB_VTC_LOGDIR/$name.log" 2>&1
    echo $? >"$PB_VTC_LOGDIR/$name.rc"
' sh {}

passed=0
failed=0
for vtc in "$here"/*.vtc; do
    name=$(basename "$vtc" .vtc)
    if [ "$(cat "$logdir/$name.rc" 2>/dev/null)" = 0 ]; then
        echo "ok    $name"
        passed=$((passed + 1))
    else
        echo "FAIL  $name"
        grep -E '^(----|#)' "$logdir/$name.log" | head -20 | sed 's/^/      /'
        failed=$((failed + 1))
    fi
done
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
