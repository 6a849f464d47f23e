#!/usr/bin/env bash
# Restart without loss: the agent is killed (kill -9) while 50 containers of a real dockerd
# mount and unmount a tmpfs in loops (trapped calls vetted by the agent). The agent runs
# under stockade-keeper, which stands in for systemd here (systemd is not PID 1 on this
# machine): it speaks systemd's side of the protocol the agent uses ($NOTIFY_SOCKET with
# FDSTORE=1/FDNAME=/FDSTOREREMOVE=1, and the kept fds passed back as
# $LISTEN_FDS/$LISTEN_FDNAMES on the restart). What a user sees: no call fails, no
# container dies, calls made while the agent is away wait and are answered once it is
# back; a container that stopped while the agent was away is gone from the first status;
# a range whose release failed while the agent was down is free after its start; what a
# container mounted before the restart is not taken for one of its initial mounts after it.
# STOCKADE_RESTART_CONTAINERS changes the number of containers.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require
n=${STOCKADE_RESTART_CONTAINERS:-50}
docker_agent_config
mkdir -p ctl

start_keeper() {
        docker_start_agent "$STOCKADE_BIN/stockade-keeper" --socket "$SCRATCH/keeper.sock" --restart-sec 1 --
}
status_json() { timeout -s KILL 40 "$ctl" --socket "unix:$SCRATCH/control.sock" status --json; }
now_us() { echo $(( $(date +%s%N) / 1000 )); }

on_exit docker_stop_agent
on_exit docker_stop
start_keeper && docker_start || exit 1

# ---- 50 containers in mount/umount loops; the agent is killed under them ----
start=$SECONDS
runs=()
for ((i = 0; i < n; i++)); do
        timeout -s KILL 60 docker run -d --cap-add SYS_ADMIN --network=none -v "$SCRATCH/ctl:/ctl" --name "loop$i" \
                stockade-test mount-probe loop /ctl/stop >/dev/null 2>>docker-run.err &
        runs+=($!)
        (( i % 8 == 7 || i == n - 1 )) && { wait "${runs[@]}"; runs=(); }
done # never a bare wait: dockerd is a child of this shell too
timeout -s KILL 60 docker run -d --network=none --name gone stockade-test sleep 1000 >/dev/null
read -r gone_pid gone_id < <(timeout -s KILL 20 docker inspect -f '{{.State.Pid}} {{.Id}}' gone)
echo "# $n containers started in $((SECONDS - start)) s"
sleep 2 # every container is in its loop

agent=$(pgrep -P "$AGENT_PID" -x stockaded)
killed_us=$(now_us)
kill -9 "$agent"
kill -9 "$gone_pid" # the container stops while the agent is away
# The control socket is kept too: this status waits in its queue and is the new agent's first answer.
first=$(status_json)
ready_us=$(now_us)
sleep 3 # the loops go on under the new agent
running=$(timeout -s KILL 20 docker ps -q --filter name=loop | wc -l)
touch ctl/stop
for _ in $(seq 100); do # every loop sees the file within its next call
        [[ $(timeout -s KILL 20 docker ps -q --filter name=loop | wc -l) -eq 0 ]] && break
        sleep 0.1
done
for ((i = 0; i < n; i++)); do timeout -s KILL 20 docker logs "loop$i" 2>&1; done >loops.log
# The calls that waited for the agent: made before the new agent answered, answered after the kill.
read -r calls failed finished waited resumed < <(awk -v killed="$killed_us" -v ready="$ready_us" '
        /^calls / {calls += $2; failed += $4; finished++}
        /^slow / && $4 > killed && $4 - $2 < ready {
                if ($2 > waited) waited = $2
                if (!seen || $4 - ready > resumed) resumed = $4 - ready
                seen = 1
        }
        END {print calls + 0, failed + 0, finished + 0, waited + 0, seen ? resumed : "none"}' loops.log)
echo "agent away (kill -9 to its first answer, restart delay 1 s): $(( (ready_us - killed_us) / 1000 )) ms"
echo "$calls trapped calls in $n containers, $failed failed, $finished loops ended when told; calls waited up to $(( waited / 1000 )) ms; the last waiting call was answered $([[ $resumed == none ]] && echo "(none)" || echo "$(( resumed / 1000 )) ms") after the new agent's first answer"
echo "# calls the new agent took from the journal of calls (received, not handed on, at the kill): $(grep -o '[0-9]* call(s) received by the agent before' agent.log | awk '{n += $1} END {print n + 0}')"
echo "# $((SECONDS - start)) s"

if [[ $running -eq $n && $failed -eq 0 ]]; then
        pass "kill -9 of the agent under $n containers in mount loops: no call failed, no container died"
else
        fail "kill -9 of the agent under $n containers in mount loops: no call failed, no container died" \
                "$running of $n running after the restart, $failed failed calls $(grep -m3 'failed:' loops.log)"
fi
# A call a helper was performing when the agent died is answered by the helper itself, and
# the calls the helper parent had not started yet are started when the agent's end closes.
if [[ $finished -eq $n ]]; then
        pass "every loop ended when told: calls in flight at the kill were answered"
else
        fail "every loop ended when told: calls in flight at the kill were answered" "$finished of $n loops ended when told"
fi
if [[ -n $first ]] && python3 -c 'import json,sys; sys.exit(any(c["id"] == sys.argv[1] for c in json.load(sys.stdin)["containers"]["list"]))' "$gone_id" <<<"$first"; then
        pass "a container stopped while the agent was away is not in the first status after the restart"
else
        fail "a container stopped while the agent was away is not in the first status after the restart" "$first"
fi

# ---- what a container mounted is still its own after a restart ----
# The agent records a container's mounts when it starts (its initial mounts, which it may
# not move or weaken) and keeps that record in the fd store: the new agent does not take
# the mounts present at its start for initial ones.
timeout -s KILL 60 docker run -d --cap-add SYS_ADMIN --network=none --name mover stockade-test sh -c \
        'mkdir -p /mnt/a /mnt/b && mount -t tmpfs none /mnt/a && sleep 1000' >/dev/null
for _ in $(seq 100); do
        timeout -s KILL 20 docker exec mover grep -q ' /mnt/a ' /proc/self/mountinfo && break
        sleep 0.1
done
kill -9 "$(pgrep -P "$AGENT_PID" -x stockaded)"
status_json >/dev/null # answered by the new agent
expect "a tmpfs mounted before the agent's restart can still be moved (not taken for an initial mount)" 0 '^moved$' \
        timeout -s KILL 30 docker exec mover sh -c 'mount -o move /mnt/a /mnt/b && grep -q " /mnt/b " /proc/self/mountinfo && echo moved'
timeout -s KILL 30 docker rm -f mover >/dev/null 2>&1

# ---- a release that failed while the agent was down ----
timeout -s KILL 60 docker run -d --network=none --name held stockade-test sleep 1000 >/dev/null
held=$(timeout -s KILL 20 docker inspect -f '{{.Id}}' held)
docker_stop_agent
timeout -s KILL 60 docker rm -f held >/dev/null 2>&1
recorded=$(grep -c "$held" state/ranges.json)
start_keeper || exit 1
if [[ $recorded -ge 1 ]] && ! grep -q "$held" state/ranges.json && ! status_json | grep -q "$held"; then
        pass "a range whose release failed while the agent was down is free after its start"
else
        fail "a range whose release failed while the agent was down is free after its start" \
                "recorded before: $recorded; ranges now: $(cat state/ranges.json)"
fi
