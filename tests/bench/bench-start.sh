#!/usr/bin/env bash
# Container start time under a real Docker engine: `docker run --rm IMAGE true` with
# stockade-runc (the default runtime) against plain runc (a second runtime of the same
# engine, for this benchmark only), alternating, 20 runs each (3 with BENCH_SMOKE=1).
# Prints each median and their ratio (target: at most 1.10), then where stockade-runc's
# time goes: the median of each phase its create and delete report (STOCKADE_TIMINGS).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
runs=20
[[ -n ${BENCH_SMOKE:-} ]] && runs=3
docker_agent_config
export STOCKADE_TIMINGS=$SCRATCH/timings # inherited by the engine, its shims and stockade-runc
docker_setup --add-runtime "plain=$(command -v runc)" || exit 1

times_stockade=() times_runc=()
elapsed_ms() {
        local start=$(date +%s%N)
        docker run --rm "$@" stockade-test true >/dev/null 2>&1 || return 1
        echo $(( ($(date +%s%N) - start) / 1000000 ))
}
docker run --rm stockade-test true >/dev/null 2>&1 # warm both paths once
docker run --rm --runtime=plain stockade-test true >/dev/null 2>&1
for ((i = 0; i < runs; i++)); do
        t=$(elapsed_ms) || { echo "FAIL: docker run with stockade-runc"; exit 1; }
        times_stockade+=("$t")
        t=$(elapsed_ms --runtime=plain) || { echo "FAIL: docker run with runc"; exit 1; }
        times_runc+=("$t")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ms=$(median "${times_stockade[@]}") mr=$(median "${times_runc[@]}")
echo "docker run --rm true, $runs runs each: stockade-runc median ${ms} ms, runc median ${mr} ms, ratio $(awk -v a="$ms" -v b="$mr" 'BEGIN {printf "%.3f", a / b}') (target <= 1.10)"

# "create ID read=0.31 register=0.80 ... total=41.2": the median of each phase (mawk: no asort).
values() { awk -v c="$1" -v k="$2" '$1 == c {for (i = 3; i <= NF; i++) {split($i, kv, "="); if (k == "" || kv[1] == k) print (k == "" ? kv[1] : kv[2])}}' "$STOCKADE_TIMINGS" 2>/dev/null; }
for command in create delete; do
        breakdown=
        for phase in $(values "$command" "" | awk '!seen[$0]++'); do
                breakdown+="${breakdown:+,} $phase=$(values "$command" "$phase" | sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}')"
        done
        echo "stockade-runc $command, median ms per phase:${breakdown:- none reported}"
done
