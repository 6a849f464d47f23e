#!/usr/bin/env bash
# The cost of a trapped call: mknod(S_IFIFO) in a Stockade container, answered by the
# agent's broker (CONTINUE), against a raw libseccomp notify loop in the same run; and of
# an untrapped call (getppid) in a Stockade container against a plain runc container
# (targets: at most 1.5 and 1.05). BENCH_SMOKE=1 makes fewer calls.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
n=20000
[[ -n ${BENCH_SMOKE:-} ]] && n=500
docker_agent_config
docker_setup --add-runtime "plain=$(command -v runc)" || exit 1
gcc -static -O2 -o notify-loop "$STOCKADE_TOP/tests/bench/notify-loop.c" -lseccomp 2>/dev/null

raw=$(./notify-loop raw $n | awk '{print $5}')
ours=$(docker_run stockade-test notify-loop calls $n)
plain=$(docker_run --runtime=plain stockade-test notify-loop calls $n)
trapped=$(awk '{print $3}' <<<"$ours")
untrapped=$(awk '{print $7}' <<<"$ours") untrapped_runc=$(awk '{print $7}' <<<"$plain")
[[ -n $raw && -n $trapped && -n $untrapped && -n $untrapped_runc ]] || { echo "FAIL: bench-notify: '$raw' '$ours' '$plain'"; exit 1; }
echo "trapped mknod: ${trapped} us through the agent, ${raw} us with a raw libseccomp loop, ratio $(awk -v a="$trapped" -v b="$raw" 'BEGIN {printf "%.2f", a / b}') (target <= 1.5)"
echo "untrapped getppid: ${untrapped} us in a Stockade container, ${untrapped_runc} us under runc, ratio $(awk -v a="$untrapped" -v b="$untrapped_runc" 'BEGIN {printf "%.3f", a / b}') (target <= 1.05)"
