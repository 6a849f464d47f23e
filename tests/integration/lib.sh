# Sourced by integration scripts: result lines and a scratch directory removed on exit.
set -uo pipefail

: "${STOCKADE_BIN:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}"
: "${STOCKADE_TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SCRATCH=$(mktemp -d /tmp/stockade-it.XXXXXX)
cleanup_hooks=()
run_cleanup() {
        set +e # every hook runs, whatever the one before it returned
        local i
        for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}"; done
        rm -rf "$SCRATCH"
}
trap run_cleanup EXIT
on_exit() { cleanup_hooks+=("$1"); }

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+: $2}"; }

# expect NAME STATUS PATTERN CMD...: CMD must exit with STATUS and print (stdout+stderr)
# something matching the extended regex PATTERN.
expect() {
        local name=$1 status=$2 pattern=$3; shift 3
        local out rc
        out=$("$@" 2>&1); rc=$?
        if [[ $rc -ne $status ]]; then
                fail "$name" "exit status $rc, expected $status; output: $(head -c 600 <<<"$out")"
        elif ! grep -qE -- "$pattern" <<<"$out"; then
                fail "$name" "output does not match '$pattern': $(head -c 600 <<<"$out")"
        else
                pass "$name"
        fi
}
