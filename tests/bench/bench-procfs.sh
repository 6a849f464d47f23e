#!/usr/bin/env bash
# The cost of reading an emulated /proc file (open+read+close of meminfo, uptime, stat,
# cpuinfo): in a Stockade container (from the page cache, which the agent's loop fills
# anew once a rendering is 0.1 s old), natively (the VM's
# /proc), and through LXCFS (Debian's lxcfs, started here on a mount point of its own and
# read by a VM process), all in the same run; the ratio Stockade/LXCFS per file (target:
# at most 0.25). Then N containers read in a loop at once: the agent's CPU time, the
# per-read latency, and whether every meminfo answer was the container's own.
# BENCH_SMOKE=1: fewer reads and 3 containers.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
[[ -c /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 0; }
command -v lxcfs >/dev/null || { echo "FAIL: lxcfs is missing (make deps installs it)"; exit 1; }
n=2000 containers=50 loop_reads=400
[[ -n ${BENCH_SMOKE:-} ]] && n=200 containers=3 loop_reads=50
docker_agent_config
docker_setup || exit 1
img=stockade-test
gcc -O2 -o procfs-read "$STOCKADE_TOP/tests/bench/procfs-read.c" || exit 1

mkdir -p lxcfs
lxcfs -p "$SCRATCH/lxcfs.pid" "$SCRATCH/lxcfs" >lxcfs.log 2>&1 &
lxcfs_pid=$!
on_exit "kill $lxcfs_pid 2>/dev/null; sleep 0.2; umount -l '$SCRATCH/lxcfs' 2>/dev/null"
for _ in $(seq 50); do [[ -e lxcfs/proc/meminfo ]] && break; sleep 0.1; done
[[ -e lxcfs/proc/meminfo ]] || { echo "FAIL: lxcfs did not start: $(tail -3 lxcfs.log)"; exit 1; }

limits=(-m 256m --cpus 1.5)
ours=$(timeout -s KILL 300 docker run --rm "${limits[@]}" $img procfs-read /proc "$n" "MemTotal: 262144 kB" 2>&1)
native=$(./procfs-read /proc "$n")
lx=$(./procfs-read "$SCRATCH/lxcfs/proc" "$n")
field() { awk -v k="$2" '$1 == k {print $2}' <<<"$1"; }
printf '%-8s %12s %12s %12s %10s\n' file stockade-us native-us lxcfs-us vs-lxcfs
ok=1
for f in meminfo uptime stat cpuinfo; do
        s=$(field "$ours" $f) v=$(field "$native" $f) l=$(field "$lx" $f)
        [[ -n $s && -n $v && -n $l ]] || { fail "reads of $f" "stockade: $ours; native: $native; lxcfs: $lx"; ok=0; continue; }
        r=$(awk -v a="$s" -v b="$l" 'BEGIN {printf "%.3f", a / b}')
        printf '%-8s %12s %12s %12s %10s\n' $f "$s" "$v" "$l" "$r"
        awk -v r="$r" 'BEGIN {exit !(r <= 0.25)}' || echo "# $f: ratio $r is above the 0.25 target"
done
[[ $(field "$ours" wrong) == 0 ]] && pass "every meminfo read in the container said MemTotal 262144 kB" ||
        fail "every meminfo read in the container said MemTotal 262144 kB" "$ours"

# ---- many containers at once ----
ticks() { awk '{print $14 + $15}' "/proc/$AGENT_PID/stat"; }
names=()
for i in $(seq "$containers"); do
        name=reader$i
        timeout -s KILL 60 docker run -d --name $name "${limits[@]}" $img sh -c \
                "while [ ! -e /tmp/go ]; do sleep 0.1; done; procfs-read /proc $loop_reads 'MemTotal: 262144 kB' >/tmp/out 2>&1; touch /tmp/done; sleep 600" >/dev/null || { fail "container $i starts"; ok=0; break; }
        names+=($name)
done
t0=$(ticks) start=$(date +%s.%N)
go_pids=()
for c in "${names[@]}"; do timeout -s KILL 30 docker exec $c touch /tmp/go & go_pids+=($!); done
for p in "${go_pids[@]}"; do wait "$p"; done
for c in "${names[@]}"; do
        for _ in $(seq 300); do timeout -s KILL 20 docker exec $c test -e /tmp/done && break; sleep 0.2; done
done
t1=$(ticks) end=$(date +%s.%N)
wrong=0 lat=()
for c in "${names[@]}"; do
        out=$(timeout -s KILL 20 docker exec $c cat /tmp/out)
        [[ $(field "$out" wrong) == 0 ]] || wrong=$((wrong + 1))
        lat+=("$(field "$out" meminfo)")
done
reads=$((containers * loop_reads * 4))
hz=$(getconf CLK_TCK)
printf 'containers %d, reads %d, agent CPU %.2f s over %.2f s, per read: agent %.1f us, meminfo latency median %s us\n' \
        "$containers" "$reads" "$(awk -v t=$((t1 - t0)) -v h="$hz" 'BEGIN {print t / h}')" "$(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}')" \
        "$(awk -v t=$((t1 - t0)) -v h="$hz" -v r="$reads" 'BEGIN {print t / h / r * 1e6}')" "$(printf '%s\n' "${lat[@]}" | sort -g | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}')"
[[ $wrong == 0 && ${#names[@]} == "$containers" ]] && pass "$containers containers reading at once all got their own meminfo" ||
        fail "$containers containers reading at once all got their own meminfo" "$wrong containers saw a wrong answer"
docker rm -f "${names[@]}" >/dev/null 2>&1
[[ $ok == 1 ]]
