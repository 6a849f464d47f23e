# Sourced (after lib.sh) by the tests that run stockaded on its own: the agent runs in a
# private mount namespace held by a sleeper process, so its lock mounts vanish with it;
# tampering happens inside that namespace via in_ns. The caller sets $sock (the control
# address) and writes the configuration to $SCRATCH/etc/stockade/stockaded.json.
ctl=$STOCKADE_BIN/stockadectl
agentd=$STOCKADE_BIN/stockaded

mount_ns_holder
holder=$HOLDER
in_ns() { nsenter -t "$holder" -m -- "$@"; }

agent_pid=
start_agent() {
        # nsenter execs the agent (no fork for a mount namespace), so $! is the agent.
        nsenter -t "$holder" -m -- "$agentd" --config "$SCRATCH/etc/stockade/stockaded.json" >>"$SCRATCH/agent.log" 2>&1 &
        agent_pid=$!
        for _ in $(seq 100); do
                $ctl --socket "$sock" status >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        echo "agent did not start:"; tail -20 "$SCRATCH/agent.log"
        return 1
}
stop_agent() {
        [[ -n $agent_pid ]] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null
        agent_pid=
}
on_exit stop_agent

# status_field EXPR: evaluates a Python expression over the status JSON bound to s.
status_field() {
        $ctl --socket "$sock" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}
# wait_for EXPR VALUE: polls the status for up to 3 s.
wait_for() {
        local v
        for _ in $(seq 60); do
                v=$(status_field "$1" 2>/dev/null)
                [[ $v == "$2" ]] && return 0
                sleep 0.05
        done
        echo "status: $1 is '$v', expected '$2'"
        return 1
}
check() { local name=$1; shift; if out=$("$@" 2>&1); then pass "$name"; else fail "$name" "$out"; fi; }

events=$SCRATCH/events.jsonl
start_events() {
        $ctl --socket "$sock" events --json >>"$events" 2>&1 &
        events_pid=$!
        on_exit "kill $events_pid 2>/dev/null"
        sleep 0.2
}
# saw_event METHOD PATTERN: an event METHOD whose JSON matches PATTERN arrives within 3 s.
saw_event() {
        for _ in $(seq 60); do
                grep "\"method\":\"$1\"" "$events" | grep -qE -- "$2" && return 0
                sleep 0.05
        done
        echo "no $1 event matching '$2' in: $(tail -5 "$events")"
        return 1
}
