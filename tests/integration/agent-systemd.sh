#!/usr/bin/env bash
# stockaded's systemd integration without systemd as PID 1 (it is not, here): this test
# plays systemd's side of NOTIFY_SOCKET and of socket activation, and checks the units
# with systemd-analyze.
. "$(dirname "$0")/lib.sh"
ctl=$STOCKADE_BIN/stockadectl
agentd=$STOCKADE_BIN/stockaded
cd "$SCRATCH"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: agent tests need root"; exit 0; }

mkdir -p state
cat >config.json <<JSON
{"stateDir": "$SCRATCH/state", "runDir": "$SCRATCH/run", "trustRoot": "$SCRATCH/root.json", "engineConfig": "$SCRATCH/daemon.json", "locks": []}
JSON
# Agents told of a file descriptor store leave the /proc emulation mounted for the next one.
on_exit "sleep 0.2; umount -l '$SCRATCH/run/procfs' 2>/dev/null"

# ---- sd_notify: READY, STATUS, WATCHDOG, STOPPING in order ----
python3 "$STOCKADE_TOP/tests/integration/notify-listener.py" "$SCRATCH/notify.sock" 10 >notify.log &
listener=$!
on_exit "kill $listener 2>/dev/null"
for _ in $(seq 100); do grep -q listening notify.log 2>/dev/null && break; sleep 0.05; done
NOTIFY_SOCKET=$SCRATCH/notify.sock WATCHDOG_USEC=200000 \
        sh -c 'WATCHDOG_PID=$$ exec "$0" --config "$1" --control "unix:$2"' "$agentd" "$SCRATCH/config.json" "$SCRATCH/c.sock" 2>agent.log &
agent=$!
sleep 0.6
kill -TERM $agent; wait $agent; rc=$?
wait $listener
order=$(python3 - <<'PY'
seen = []
for line in open("notify.log"):
    for field in line.strip().split("|"):
        for key in ("READY=1", "STATUS=", "WATCHDOG=1", "STOPPING=1"):
            if field.startswith(key) and (not seen or seen[-1] != key):
                seen.append(key)
print(" ".join(seen))
PY
)
if [[ $rc -eq 0 && $order == "READY=1 STATUS= WATCHDOG=1 STOPPING=1" ]] && grep -q 'STATUS=policy builtin' notify.log; then
        pass "sd_notify: READY=1, STATUS=, WATCHDOG=1, STOPPING=1 in order; clean exit on SIGTERM"
else
        fail "sd_notify: READY=1, STATUS=, WATCHDOG=1, STOPPING=1 in order" "exit $rc, saw '$order': $(cat notify.log)"
fi

# ---- socket activation ----
if command -v systemd-socket-activate >/dev/null; then
        systemd-socket-activate -l "$SCRATCH/activated.sock" "$agentd" --config "$SCRATCH/config.json" 2>activate.log &
        activator=$!
        on_exit "kill $activator 2>/dev/null"
        for _ in $(seq 100); do [[ -S activated.sock ]] && break; sleep 0.05; done
        expect "socket activation: the agent serves the passed socket" 0 '^agent: +stockaded' \
                $ctl --socket "unix:$SCRATCH/activated.sock" status
        kill $activator 2>/dev/null; wait $activator 2>/dev/null
else
        echo "SKIP: socket activation: systemd-socket-activate not installed"
fi

# ---- unit files ----
if command -v systemd-analyze >/dev/null; then
        mkdir -p units
        for f in stockaded.service stockaded.socket; do
                sed "s|/usr/local/bin/stockaded|$agentd|" "$STOCKADE_TOP/systemd/$f" >units/$f
        done
        # Documentation=man:stockaded(8) must name a page: the one make built.
        mkdir -p man/man8
        cp "$STOCKADE_BIN/../man/stockaded.8" man/man8/
        expect "systemd-analyze verify passes on the units" 0 '' env MANPATH="$PWD/man" \
                systemd-analyze verify units/stockaded.service units/stockaded.socket
fi

# ---- SIGHUP reloads the configuration ----
"$agentd" --config "$SCRATCH/config.json" --control "unix:$SCRATCH/hup.sock" 2>hup.log &
agent=$!
on_exit "kill $agent 2>/dev/null"
for _ in $(seq 100); do $ctl --socket "unix:$SCRATCH/hup.sock" status >/dev/null 2>&1 && break; sleep 0.05; done
sed -i "s|$SCRATCH/daemon.json|$SCRATCH/daemon2.json|; s|^{|{\"brokerLimits\": {\"helpers\": 2, \"queue\": 0}, |" config.json
kill -HUP $agent
for _ in $(seq 60); do [[ -f daemon2.json ]] && break; sleep 0.05; done
expect "SIGHUP reloads the configuration" 0 "engine: +$SCRATCH/daemon2.json current" $ctl --socket "unix:$SCRATCH/hup.sock" status
expect "SIGHUP applies the broker limits" 0 '^\{"helpers_per_container": 4, "helpers": 2, "queued_per_container": 64, "queued": 0\}$' \
        sh -c "$ctl --socket unix:$SCRATCH/hup.sock status --json | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)[\"containers\"][\"limits\"]))'"
kill $agent; wait $agent

expect "stockaded --help" 0 'usage: stockaded' $agentd --help
expect "stockaded rejects a bad config with the key" 1 "'refreshInterval' must be a duration" \
        sh -c "echo '{\"refreshInterval\": \"soon\"}' >bad.json; $agentd --config bad.json"
expect "stockaded rejects bad broker limits with the key" 1 "'brokerLimits.helpersPerContainer' must be an integer from 1 to 1024" \
        sh -c "echo '{\"brokerLimits\": {\"helpersPerContainer\": 0}}' >bad.json; $agentd --config bad.json"
expect "stockaded rejects an unknown broker limit" 1 "unknown key 'brokerLimits.threads'" \
        sh -c "echo '{\"brokerLimits\": {\"threads\": 2}}' >bad.json; $agentd --config bad.json"
expect "stockaded rejects a missing config" 1 "cannot read 'missing.json'" $agentd --config missing.json
