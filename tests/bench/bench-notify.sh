#!/usr/bin/env bash
# The cost of a trapped call: mknod(S_IFIFO) in a Stockade container, answered by the
# agent's broker (CONTINUE), against a raw libseccomp notify loop in the same run; and of
# an untrapped call (getppid) in a Stockade container against a plain runc container
# (targets: at most 1.5 and 1.05). The raw loop runs in a plain runc container of the
# same image, so that its mknod meets the same overlayfs and engine profile; only the
# answerer differs. A trapped call's cost depends mostly on where the answering and the
# trapped process run (a wakeup on another CPU of this VM costs tens of microseconds), so
# both are measured with the same placement: answerer and trapped process on one CPU,
# then on two. Each figure is the median of 5 rounds. A vetted mount is performed by a
# helper in the container's namespaces: its cost is shown against the same mount and
# umount in a plain runc container, with the CPU time per vetted pair of the agent, the
# helper parent and its helpers (not in a smoke run: too few pairs for the clock's ticks).
# BENCH_SMOKE=1 makes fewer calls and one round.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
n=5000 rounds=5
[[ -n ${BENCH_SMOKE:-} ]] && n=500 rounds=1
docker_agent_config
docker_setup --add-runtime "plain=$(command -v runc)" || exit 1

median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }
ratio() { awk -v a="$1" -v b="$2" -v f="$3" 'BEGIN {printf f, a / b}'; }
placements=("0 0" "0 1")
(( $(nproc) < 2 )) && placements=("0 0")
for placement in "${placements[@]}"; do
        read -r answerer trapped_cpu <<<"$placement"
        taskset -p -c "$answerer" "$AGENT_PID" >/dev/null
        raw=() ours=()
        for ((r = 0; r < rounds; r++)); do
                raw+=("$(docker_run --runtime=plain --cpuset-cpus "$answerer,$trapped_cpu" stockade-test \
                        notify-loop raw "$n" "$answerer" "$trapped_cpu" | awk '{print $5}')")
                ours+=("$(docker_run --cpuset-cpus "$trapped_cpu" stockade-test notify-loop calls "$n" | awk '{print $3}')")
        done
        raw_us=$(printf '%s\n' "${raw[@]}" | median) ours_us=$(printf '%s\n' "${ours[@]}" | median)
        [[ -n $raw_us && -n $ours_us ]] || { echo "FAIL: bench-notify: raw '${raw[*]}', ours '${ours[*]}'"; exit 1; }
        where=$([[ $answerer == "$trapped_cpu" ]] && echo "one CPU" || echo "two CPUs")
        echo "trapped mknod on $where: ${ours_us} us through the agent, ${raw_us} us with a raw libseccomp loop, ratio $(ratio "$ours_us" "$raw_us" %.2f) (target <= 1.5)"
done
taskset -p -c "0-$(($(nproc) - 1))" "$AGENT_PID" >/dev/null

untrapped=() runc=()
for ((r = 0; r < rounds; r++)); do
        untrapped+=("$(docker_run stockade-test notify-loop calls "$n" | awk '{print $7}')")
        runc+=("$(docker_run --runtime=plain stockade-test notify-loop calls "$n" | awk '{print $7}')")
done
ours_us=$(printf '%s\n' "${untrapped[@]}" | median) runc_us=$(printf '%s\n' "${runc[@]}" | median)
[[ -n $ours_us && -n $runc_us ]] || { echo "FAIL: bench-notify: '${untrapped[*]}' '${runc[*]}'"; exit 1; }
echo "untrapped getppid: ${ours_us} us in a Stockade container, ${runc_us} us under runc, ratio $(ratio "$ours_us" "$runc_us" %.3f) (target <= 1.05)"

# Where a vetted pair's time goes: CPU time of the agent, of the helper parent and of the
# helpers it forked or kept (counted once they end and are reaped), per pair.
cpu_ticks() { awk '{print $14 + $15, $16 + $17}' "/proc/$1/stat"; }
docker_run --cap-add SYS_ADMIN stockade-test notify-loop mounts 1 >/dev/null # the agent starts the parent then
helper_parent=$(pgrep -f "stockade-helper $AGENT_PID")
read -r agent0 _ < <(cpu_ticks "$AGENT_PID")
read -r parent0 helpers0 < <(cpu_ticks "$helper_parent")
mounts=() runc=()
for ((r = 0; r < rounds; r++)); do
        mounts+=("$(docker_run --cap-add SYS_ADMIN stockade-test notify-loop mounts $((n / 10)) | awk '{print $2}')")
        runc+=("$(docker_run --runtime=plain --cap-add SYS_ADMIN stockade-test notify-loop mounts $((n / 10)) | awk '{print $2}')")
done
sleep 3 # a kept helper ends 2 s after its last call
read -r agent1 _ < <(cpu_ticks "$AGENT_PID")
read -r parent1 helpers1 < <(cpu_ticks "$helper_parent")
ours_us=$(printf '%s\n' "${mounts[@]}" | median) runc_us=$(printf '%s\n' "${runc[@]}" | median)
[[ -n $ours_us && -n $runc_us ]] || { echo "FAIL: bench-notify: '${mounts[*]}' '${runc[*]}'"; exit 1; }
# This machine's speed drifts within minutes: each round's vetted run is also set against
# the runc run right after it.
paired=$(for ((r = 0; r < rounds; r++)); do ratio "${mounts[r]}" "${runc[r]}" '%.1f\n'; done)
echo "mount+umount of a tmpfs: ${ours_us} us vetted by the agent, ${runc_us} us under runc (not vetted), ratio $(ratio "$ours_us" "$runc_us" %.1f); per round: $(echo $paired), median $(median <<<"$paired")"
[[ -n ${BENCH_SMOKE:-} ]] || awk -v pairs=$((rounds * n / 10)) -v hz="$(getconf CLK_TCK)" -v a=$((agent1 - agent0)) \
        -v p=$((parent1 - parent0)) -v h=$((helpers1 - helpers0)) 'BEGIN {
        f = 1e6 / hz / pairs
        printf "CPU per vetted pair: agent %.0f us (registrations included), helper parent %.0f us, helpers %.0f us\n", a * f, p * f, h * f
}'
