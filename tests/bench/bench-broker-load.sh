#!/usr/bin/env bash
# Containers at once under one agent, each making trapped calls (a mount and an unmount
# every second), all answered; prints the agent's memory and CPU time. 200 containers
# (STOCKADE_LOAD_CONTAINERS changes it), 10 with BENCH_SMOKE=1.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require
n=${STOCKADE_LOAD_CONTAINERS:-200}
[[ -n ${BENCH_SMOKE:-} ]] && n=10
docker_agent_config
docker_setup || exit 1

agent_usage() { # "rss_kib hwm_kib cpu_ms"
        local rss hwm ticks
        rss=$(awk '/VmRSS/ {print $2}' /proc/$AGENT_PID/status)
        hwm=$(awk '/VmHWM/ {print $2}' /proc/$AGENT_PID/status)
        ticks=$(awk '{print $14 + $15}' /proc/$AGENT_PID/stat)
        echo "$rss $hwm $(( ticks * 1000 / $(getconf CLK_TCK) ))"
}
read -r rss0 _ cpu0 < <(agent_usage)
start=$SECONDS
runs=()
for ((i = 0; i < n; i++)); do
        docker run -d --cap-add SYS_ADMIN --network=none --name "load$i" stockade-test sh -c \
                'mkdir -p /mnt/t; while true; do mount -t tmpfs none /mnt/t && umount /mnt/t || echo FAILED; sleep 1; done' >/dev/null 2>&1 &
        runs+=($!)
        (( i % 8 == 7 || i == n - 1 )) && { wait "${runs[@]}"; runs=(); }
done # never a bare wait: dockerd and the agent are children of this shell too
started=$(docker ps -q | wc -l)
sleep 5 # every container makes a few rounds of trapped calls
ok=$("$ctl" --socket "unix:$SCRATCH/control.sock" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["containers"]
print(sum(1 for c in s["list"] if c["allowed"] >= 4 and c["denied"] == 0))')
failed=$(for ((i = 0; i < n; i++)); do docker logs "load$i" 2>&1; done | grep -c FAILED)
read -r rss1 hwm cpu1 < <(agent_usage)
echo "$started containers running after $((SECONDS - start)) s; $ok with every trapped call answered; $failed failed calls"
echo "agent: VmRSS ${rss0} KiB before, ${rss1} KiB with $started containers (peak ${hwm} KiB); CPU $((cpu1 - cpu0)) ms"
if [[ $started -eq $n && $ok -eq $n && $failed -eq 0 ]]; then
        pass "$n containers at once, each making trapped calls, all answered"
else
        fail "$n containers at once, each making trapped calls, all answered"
fi
