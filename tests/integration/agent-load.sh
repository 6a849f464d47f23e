#!/usr/bin/env bash
# Load: 200 concurrent clients calling status and 50 event subscribers against one agent,
# while settings are pushed. Every call must succeed, every subscriber must see every
# event, and the agent's memory is printed and must stay bounded.
. "$(dirname "$0")/lib.sh"
ctl=$STOCKADE_BIN/stockadectl
agentd=$STOCKADE_BIN/stockaded
cd "$SCRATCH"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: agent tests need root"; exit 0; }

$ctl keygen --out admin >/dev/null
$ctl root init --threshold 1 --key admin.pub --sign admin.key >root.json
cat >config.json <<JSON
{"stateDir": "$SCRATCH/state", "runDir": "$SCRATCH/run", "trustRoot": "$SCRATCH/root.json", "engineConfig": "$SCRATCH/daemon.json", "locks": []}
JSON
for i in 1 2 3 4 5; do
        $ctl sign --key admin.key --org acme --serial $i --valid-for 1d "$STOCKADE_TOP/tests/data/admin-settings.json" >b$i.json
done
"$agentd" --config config.json --control "unix:$SCRATCH/c.sock" 2>agent.log &
agent=$!
on_exit "kill $agent 2>/dev/null; wait $agent 2>/dev/null"
for _ in $(seq 100); do $ctl --socket "unix:$SCRATCH/c.sock" status >/dev/null 2>&1 && break; sleep 0.05; done

if out=$(python3 "$STOCKADE_TOP/tests/integration/load-clients.py" "$SCRATCH/c.sock" "$agent" b1.json b2.json b3.json b4.json b5.json 2>&1); then
        echo "$out"
        pass "200 status clients and 50 subscribers: no error, memory bounded"
else
        fail "200 status clients and 50 subscribers" "$out"
fi
