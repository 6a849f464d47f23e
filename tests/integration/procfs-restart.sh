#!/usr/bin/env bash
# The /proc emulation survives the agent: its FUSE fd is kept in a file descriptor store
# (stockade-keeper's, which speaks systemd's side of the protocol: there is no systemd as
# PID 1 here), the agent is killed with SIGKILL and started again with the fd, and a running
# container's /proc/meminfo reads again (never ENOTCONN); a new container is served its own.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require
[[ -c /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 0; }
docker_agent_config
on_exit docker_stop_agent
on_exit docker_stop
docker_start_agent "$STOCKADE_BIN/stockade-keeper" --socket "$SCRATCH/keeper.sock" --restart-sec 0.2 -- || exit 1
keeps_fuse() { ls -l "/proc/$AGENT_PID/fd" 2>/dev/null | grep -q ' -> /dev/fuse$'; }
for _ in $(seq 100); do keeps_fuse && break; sleep 0.05; done
keeps_fuse && pass "the keeper holds the agent's FUSE fd" || { fail "the keeper holds the agent's FUSE fd" "$(tail -3 agent.log)"; exit 1; }
docker_start || exit 1
img=stockade-test
timeout -s KILL 60 docker run -d --name c1 -m 256m $img sleep 600 >/dev/null
expect "before the restart: MemTotal 262144 kB" 0 '^MemTotal: +262144 kB$' timeout -s KILL 20 docker exec c1 head -1 /proc/meminfo
agent=$(pgrep -P "$AGENT_PID" -x stockaded)
kill -9 "$agent"
for _ in $(seq 100); do
        new=$(pgrep -P "$AGENT_PID" -x stockaded)
        [[ -n $new && $new != "$agent" ]] && "$ctl" --socket "unix:$SCRATCH/control.sock" status >/dev/null 2>&1 && break
        sleep 0.1
done
expect "after kill -9 and restart: the running container's meminfo is its own again" 0 '^MemTotal: +262144 kB$' \
        timeout -s KILL 20 docker exec c1 head -1 /proc/meminfo
expect "after the restart: a new container is served its own meminfo" 0 '^MemTotal: +131072 kB$' timeout -s KILL 60 docker run --rm -m 128m $img head -1 /proc/meminfo
docker rm -f c1 >/dev/null 2>&1
