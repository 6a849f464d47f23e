#!/usr/bin/env bash
# Runs runc's own integration suite (tests/integration/*.bats of a runc source tree, e.g.
# tag v1.1.5) twice: with plain runc, then with stockade-runc in front of it (a wrapper
# adding --stockade-config, an agent of its own), and prints each test whose result
# differs. Not part of `make test`: it needs the runc tree, bats, a Go toolchain for runc's
# helpers and about 10 minutes.
#   scripts/runc-suite.sh RUNC_SRC [BATS ARGUMENTS, default: RUNC_SRC/tests/integration]
# RUNC_SRC must already hold what the suite would download: testdata/busybox-amd64.tar.xz
# and testdata/debian-amd64.tar.xz (see the README), and the helpers built from
# contrib/cmd (recvtty, sd-helper, seccompagent -tags seccomp).
set -uo pipefail
[[ $# -ge 1 && -d $1/tests/integration ]] || { echo "usage: $0 RUNC_SRC [BATS ARGUMENTS]" >&2; exit 2; }
src=$(cd "$1" && pwd)
shift
top=$(cd "$(dirname "$0")/.." && pwd)
bin=$top/build/bin
runc=$(command -v runc)
work=$(mktemp -d /tmp/stockade-runc-suite.XXXXXX) # sticky /tmp: the config must be root's only
chmod 755 "$work"
mkdir -p "$work"/{etc,state,run,bin,plain,data}
agent=
cleanup() {
        [[ -n $agent ]] && { kill "$agent"; wait "$agent"; } 2>/dev/null
        grep -F " $work/" /proc/self/mountinfo | cut -d" " -f5 | sort -r | xargs -r -n1 umount -l
        rm -rf "$work"
}
trap cleanup EXIT

# The bundles (in the suite's TMPDIR) are where an engine keeps its containers' roots.
cat >"$work/etc/stockaded.json" <<JSON
{"control": ["unix:$work/control.sock"], "stateDir": "$work/state", "trustRoot": "$work/etc/root.json",
 "engineConfig": "$work/etc/daemon.json", "engineDataRoot": "$work/data", "engineSocket": "$work/docker.sock",
 "runDir": "$work/run", "runtime": "$bin/stockade-runc", "runc": "$runc", "locks": [], "hostShares": ["$work/data"]}
JSON
printf '#!/bin/sh\nexec "%s" --stockade-config "%s" "$@"\n' "$bin/stockade-runc" "$work/etc/stockaded.json" >"$work/bin/runc"
chmod 755 "$work/bin/runc"
"$bin/stockaded" --config "$work/etc/stockaded.json" >"$work/agent.log" 2>&1 &
agent=$!
for _ in $(seq 100); do "$bin/stockadectl" --socket "unix:$work/control.sock" status >/dev/null 2>&1 && break; sleep 0.05; done

args=("$@")
[[ ${#args[@]} -gt 0 ]] || args=(.)
# suite RUNC TMPDIR OUT: one run, under a terminal (foreground tests need one).
suite() {
        (cd "$src/tests/integration" && RUNC=$1 TMPDIR=$2 script -qec "bats -t ${args[*]}" /dev/null >"$3" 2>&1 </dev/null)
        grep -E '^(not )?ok ' "$3" | sed -E 's/^(not ok|ok) ([0-9]+) /\2\t\1\t/' >"$3.res"
        echo "$(basename "$3" .tap): $(grep -c '^ok ' "$3") ok (of which $(grep -c '^ok .*# skip' "$3") skipped), $(grep -c '^not ok ' "$3") not ok"
}
out=${RUNC_SUITE_OUT:-$PWD}
suite "$runc" "$work/plain" "$out/plain.tap"
suite "$work/bin/runc" "$work/data" "$out/stockade.tap"
echo "tests whose result differs (number, plain runc, stockade-runc, name):"
join -t$'\t' "$out/plain.tap.res" "$out/stockade.tap.res" | awk -F'\t' '$2 != $4 {print $1 "\t" $2 "\t" $4 "\t" $3}'
echo "containers the agent still holds: $("$bin/stockadectl" --socket "unix:$work/control.sock" status | grep -c '^container:')"
