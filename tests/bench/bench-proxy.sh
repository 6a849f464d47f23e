#!/usr/bin/env bash
# The engine socket's proxy under a real Docker engine: `docker ps` through a container's
# proxied socket against the engine's socket directly, alternating, 30 runs each (3 with
# BENCH_SMOKE=1), medians and their ratio (target: at most 1.2); then the agent's memory
# before and after 100 idle connections to the proxy.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require
runs=30
[[ -n ${BENCH_SMOKE:-} ]] && runs=3
docker_admin_init
docker_agent_config
docker_setup || exit 1
push_settings '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true,
 "dockerSocketMount": {"imageList": {"images": ["*"]}}}}' || { echo "FAIL: push settings"; exit 1; }
timeout -s KILL 60 docker run -d --name holder -v "$SCRATCH/docker.sock:/var/run/docker.sock" stockade-test sleep 600 >/dev/null 2>&1
proxy=$("$ctl" --socket "unix:$SCRATCH/control.sock" status --json |
        python3 -c 'import json,sys; print(next(e["socket"] for e in json.load(sys.stdin)["containers"]["engine_sockets"] if e.get("socket")))')
[[ -S $proxy ]] || { echo "FAIL: the container holds no proxied socket"; exit 1; }

elapsed_ms() {
        local start=$(date +%s%N)
        timeout -s KILL 30 docker -H "unix://$1" ps >/dev/null 2>&1 || return 1
        echo $(( ($(date +%s%N) - start) / 1000000 ))
}
direct=() proxied=()
elapsed_ms "$SCRATCH/docker.sock" >/dev/null && elapsed_ms "$proxy" >/dev/null # warm both
for ((i = 0; i < runs; i++)); do
        t=$(elapsed_ms "$SCRATCH/docker.sock") || { echo "FAIL: docker ps on the engine socket"; exit 1; }
        direct+=("$t")
        t=$(elapsed_ms "$proxy") || { echo "FAIL: docker ps through the proxy"; exit 1; }
        proxied+=("$t")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR] = $1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
mp=$(median "${proxied[@]}") md=$(median "${direct[@]}")
echo "docker ps, $runs runs each: through the proxy median ${mp} ms, engine socket median ${md} ms, ratio $(awk -v a="$mp" -v b="$md" 'BEGIN {printf "%.3f", a / b}') (target <= 1.2)"

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$AGENT_PID/status"; }
before=$(rss_kib)
python3 - "$proxy" "$AGENT_PID" "$before" <<'PY'
import socket, sys, time
conns = []
for _ in range(100):
    s = socket.socket(socket.AF_UNIX)
    s.connect(sys.argv[1])
    conns.append(s)
# One request on each, so that every connection has been through a read and is idle now.
for s in conns:
    s.sendall(b"GET /_ping HTTP/1.1\r\nHost: x\r\n\r\n")
for s in conns:
    s.recv(4096)
time.sleep(0.5)
rss = int(next(l.split()[1] for l in open("/proc/%s/status" % sys.argv[2]) if l.startswith("VmRSS")))
before = int(sys.argv[3])
print("the agent with 100 idle proxy connections: VmRSS %d KiB (%+d KiB, %.1f KiB a connection)" % (rss, rss - before, (rss - before) / 100))
PY
timeout -s KILL 30 docker rm -f holder >/dev/null 2>&1
