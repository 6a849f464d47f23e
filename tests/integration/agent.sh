#!/usr/bin/env bash
# stockaded end to end: the real agent in a scratch directory with a unix control socket,
# locks on files this test creates, settings pushed and fetched from a real local HTTPS
# server. The agent runs in a private mount namespace (agent-lib.sh).
. "$(dirname "$0")/lib.sh"
settings=$STOCKADE_TOP/tests/data/admin-settings.json
cd "$SCRATCH"

[[ $(id -u) -eq 0 ]] || { echo "SKIP: agent tests need root"; exit 0; }
. "$STOCKADE_TOP/tests/integration/agent-lib.sh"

mkdir -p etc/stockade etc/docker state
chmod 755 "$SCRATCH" # the unprivileged peers below must reach the socket
# The agent leaves its locks in place when it stops (they protect the VM across restarts);
# their mounts vanish with the namespace, the immutable attributes are cleared here.
on_exit "chattr -R -i $SCRATCH/etc 2>/dev/null"
sock=unix:$SCRATCH/control.sock
$ctl keygen --out admin >/dev/null
$ctl root init --threshold 1 --key admin.pub --sign admin.key >etc/stockade/root.json
echo '{"log-level": "info"}' >etc/docker/daemon.json
cat >etc/stockade/stockaded.json <<JSON
{"control": ["$sock"], "stateDir": "$SCRATCH/state", "runDir": "$SCRATCH/run", "trustRoot": "$SCRATCH/etc/stockade/root.json",
 "org": "acme", "engineConfig": "$SCRATCH/etc/docker/daemon.json", "runtime": "/usr/local/bin/stockade-runc",
 "caFile": "$SCRATCH/ca.pem", "group": "nogroup", "refreshInterval": "60m", "brokerLimits": {"helpersPerContainer": 1},
 "locks": ["$SCRATCH/etc/docker/daemon.json", "$SCRATCH/etc/stockade"]}
JSON

start_agent || { fail "agent starts"; exit 1; }
start_events

# ---- status and access control ----
check "status shows agent, policy, session, ECI, locks and containers (with the configured broker limits)" python3 -c '
import json, subprocess, sys
s = json.loads(subprocess.check_output([sys.argv[1], "--socket", sys.argv[2], "status", "--json"]))
assert s["agent"]["pid"] > 0 and s["agent"]["version"] and s["agent"]["uptime_s"] >= 0, s["agent"]
assert s["policy"]["state"] == "builtin" and s["policy"]["source"] == "builtin", s["policy"]
assert "last_error" in s["policy"] and "expires" in s["policy"] and "serial" in s["policy"]
assert s["session"] == {"signed_in": False, "org": None, "user": None, "last_fetch": None, "last_fetch_result": None}, s["session"]
assert s["eci"]["enabled"] is True and s["eci"]["locked"] is False, s["eci"]
assert [l["path"].split("/")[-1] for l in s["locks"]] == ["daemon.json", "stockade"], s["locks"]
assert s["locks"][1]["state"] == "locked" and s["locks"][1]["tamper_count"] == 0, s["locks"]
assert s["locks"][0]["state"] == "unlocked", "ECI is not locked, so the engine config is not"
limits = {"helpers_per_container": 1, "helpers": 64, "queued_per_container": 64, "queued": 256}
assert s["containers"] == {"running": 0, "ranges": 0, "limits": limits, "list": [], "engine_sockets": []}, s["containers"]
' "$ctl" "$sock"
expect "human status" 0 '^policy: +builtin' $ctl --socket "$sock" status
expect "a peer neither root nor in the group cannot connect" 1 'cannot connect to the agent at .*: Permission denied' \
        setpriv --reuid 65534 --regid 12345 --clear-groups $ctl --socket "$sock" status
expect "a group member may read status" 0 '^agent: +stockaded' \
        setpriv --reuid 65534 --regid 65534 --clear-groups $ctl --socket "$sock" status
$ctl sign --key admin.key --org acme --serial 1 --valid-for 30d "$settings" >b1.json
expect "a group member may not push" 1 "permission denied: 'settings.push' needs root" \
        setpriv --reuid 65534 --regid 65534 --clear-groups $ctl --socket "$sock" push b1.json

# ---- push ----
expect "a valid push is applied" 0 '^applied serial 1$' $ctl --socket "$sock" push b1.json
check "policy.applied event" saw_event policy.applied '"serial":1.*"source":"push"'
check "status shows the pushed policy" wait_for 's["policy"]["state"], s["policy"]["serial"], s["policy"]["source"], s["eci"]["locked"]' "enforced 1 push True"
check "engine config names the runtime and the admin's daemon options" python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
assert d["default-runtime"] == "stockade" and d["runtimes"]["stockade"]["path"] == "/usr/local/bin/stockade-runc", d
assert d["log-level"] == "warn" and d["debug"] is False, d' "$SCRATCH/etc/docker/daemon.json"
check "ECI locked: the engine config is locked too" wait_for 's["locks"][0]["state"]' locked
expect "writes to a locked file fail" 2 'Read-only file system|Operation not permitted' in_ns sh -c "echo x >>$SCRATCH/etc/docker/daemon.json"

python3 - <<'PY'
import base64, json
e = json.load(open("b1.json"))
p = bytearray(base64.b64decode(e["payload"]))
p[p.index(b'"serial":1') + 9] = ord("7")
e["payload"] = base64.b64encode(bytes(p)).decode()
json.dump(e, open("tampered.json", "w"))
PY
$ctl sign --key admin.key --org other --serial 5 --valid-for 30d "$settings" >wrong-org.json
$ctl sign --key admin.key --org acme --serial 3 --valid-for 30d "$settings" >b3.json
$ctl sign --key admin.key --org acme --serial 2 --valid-for 30d "$settings" >b2.json
$ctl sign --key admin.key --org acme --serial 9 --valid-for 1s "$settings" >short.json
expect "a second valid push" 0 '^applied serial 3$' $ctl --socket "$sock" push b3.json
expect "tampered bundle rejected" 1 '^stockadectl: rejected: signature threshold not met' $ctl --socket "$sock" push tampered.json
check "policy.rejected event with the reason" saw_event policy.rejected 'signature threshold not met'
expect "wrong-org bundle rejected" 1 "rejected: this VM is pinned to organisation 'acme'; 'other' is refused" $ctl --socket "$sock" push wrong-org.json
expect "rolled-back bundle rejected" 1 'rejected: rollback: serial 2 is older than the accepted serial 3' $ctl --socket "$sock" push b2.json
sleep 1.2
expect "expired bundle rejected" 1 'rejected: bundle expired at' $ctl --socket "$sock" push short.json
check "the previous settings stay in force" wait_for 's["policy"]["serial"], s["policy"]["state"], "expired" in s["policy"]["last_error"]' "3 enforced True"
grep -q 'policy.rejected.*rollback' agent.log && pass "rejections are logged" || fail "rejections are logged"

# ---- restart without network ----
old_pid=$agent_pid
stop_agent # SIGTERM, then wait
if ! kill -0 "$old_pid" 2>/dev/null && ! $ctl --socket "$sock" status >/dev/null 2>&1; then
        pass "the agent stops on SIGTERM"
else
        fail "the agent stops on SIGTERM"
fi
start_agent || fail "agent restarts"
check "settings survive a restart" wait_for 's["policy"]["serial"], s["policy"]["source"], s["policy"]["state"]' "3 local enforced"
check "a restarted agent adopts its locks instead of stacking mounts" python3 -c '
import sys
n = sum(1 for l in open("/proc/%s/mountinfo" % sys.argv[1]) if l.split()[4] == sys.argv[2])
assert n == 1, "%d mounts at %s" % (n, sys.argv[2])' "$holder" "$SCRATCH/etc/docker/daemon.json"
: >"$events"
start_events

# ---- locks: each tamper is restored within a second and reported ----
# Tampering runs inside the agent's namespace (in_ns), or outside it, on the file itself,
# below the read-only mount that only that namespace has (here).
lock_file=$SCRATCH/etc/docker/daemon.json
original=$(sha256sum <"$lock_file")
tamper() {
        local name=$1 what=$2; shift 2 # $1: the tampering, a shell command
        local before=$(status_field 's["locks"][0]["tamper_count"]')
        eval "$1" >/dev/null 2>&1
        local start=$(date +%s%N)
        if saw_event lock.restored "\"what\":\"[^\"]*$what" >/dev/null &&
           wait_for 's["locks"][0]["state"], s["locks"][0]["tamper_count"] > '"$before" "locked True" >/dev/null; then
                local ms=$(( ($(date +%s%N) - start) / 1000000 ))
                if [[ $ms -le 1000 ]] && grep -qE "\"method\":\"lock.tampered\".*\"what\":\"[^\"]*$what" "$events" &&
                   [[ $(sha256sum <"$lock_file") == "$original" ]] &&
                   ! in_ns sh -c "echo x >>$lock_file" 2>/dev/null; then
                        pass "$name is restored (${ms} ms) and reported"
                        return
                fi
        fi
        fail "$name is restored within a second and reported" "$(tail -3 "$events")"
}
tamper "unmount" "unmounted" 'in_ns umount "$lock_file"'
tamper "remount read-write" "remounted read-write" 'in_ns mount -o remount,bind,rw "$lock_file"'
if lsattr -d "$lock_file" 2>/dev/null | cut -d' ' -f1 | grep -q i; then
        tamper "immutable attribute cleared" "immutable attribute cleared" 'chattr -i "$lock_file"'
        tamper "file content replaced" "content replaced" "chattr -i $lock_file; echo '{}' >$lock_file"
else
        echo "SKIP: immutable attribute: not supported on $(stat -f -c %T "$SCRATCH")"
        tamper "file content replaced" "content replaced" "echo '{}' >$lock_file"
fi

# ---- sign-in and fetch from a real local HTTPS server ----
make_test_ca
$ctl sign --key admin.key --org acme --serial 4 --valid-for 30d "$settings" >served.json
start_server() {
        python3 "$STOCKADE_TOP/tests/unit/https-server.py" server.pem server.key served.json >port.txt 2>server.log &
        server_pid=$!
        on_exit "kill $server_pid 2>/dev/null"
        for _ in $(seq 100); do [[ -s port.txt ]] && break; sleep 0.05; done
        port=$(cat port.txt)
}
start_server
echo good-token >token
echo bad-token >bad-token
url=https://127.0.0.1:$port/settings

expect "sign-in" 0 'signed in as bob in acme' $ctl --socket "$sock" sign-in --org acme --user bob --token-file token --url "$url"
check "sign-in fetches and applies the settings" saw_event policy.applied '"serial":4.*"source":"fetch"'
check "status shows the session and the fetch" wait_for \
        's["session"]["signed_in"], s["session"]["user"], s["session"]["last_fetch_result"], s["policy"]["source"]' \
        "True bob applied serial 4 fetch"
check "session.changed event" saw_event session.changed '"signed_in":true'
expect "refresh" 0 'fetching settings' $ctl --socket "$sock" refresh
check "an unchanged document is answered 304" wait_for 's["session"]["last_fetch_result"]' "not modified"

expect "sign-in to another organisation is refused" 1 "this VM is pinned to organisation 'acme'; 'other' is refused" \
        $ctl --socket "$sock" sign-in --org other --user bob --token-file token --url "$url"
expect "sign-in with a wrong token" 0 'signed in' $ctl --socket "$sock" sign-in --org acme --user bob --token-file bad-token --url "$url"
check "a wrong token gives fetch.failed HTTP 401" saw_event fetch.failed '"reason":"HTTP 401"'
check "status reports the 401 and keeps the settings" wait_for 's["session"]["last_fetch_result"], s["policy"]["serial"]' "HTTP 401 4"

expect "sign-in to an oversize document" 0 'signed in' \
        $ctl --socket "$sock" sign-in --org acme --user bob --token-file token --url "https://127.0.0.1:$port/big"
check "an oversize body gives fetch.failed" saw_event fetch.failed 'response larger than 1048576 bytes'

kill "$server_pid"; wait "$server_pid" 2>/dev/null
expect "sign-in while the server is down" 0 'signed in' $ctl --socket "$sock" sign-in --org acme --user bob --token-file token --url "$url"
check "a stopped server gives fetch.failed" saw_event fetch.failed 'connect failed.*"retry_in_s":15'
expect "refresh while the server is down" 0 'fetching settings' $ctl --socket "$sock" refresh
check "failures back off exponentially" saw_event fetch.failed '"retry_in_s":30'
check "offline: the last-known-good stays enforced" wait_for 's["policy"]["state"], s["policy"]["serial"], s["session"]["last_fetch_result"].startswith("connect failed")' "enforced 4 True"

expect "sign-out" 0 'signed out' $ctl --socket "$sock" sign-out
check "signed out, settings kept" wait_for 's["session"]["signed_in"], s["policy"]["serial"]' "False 4"
expect "refresh while signed out is refused" 1 'not signed in' $ctl --socket "$sock" refresh
expect "push needs root: a bundle argument is required" 2 'push needs one BUNDLE.json' $ctl --socket "$sock" push
expect "unreachable agent" 1 "cannot connect to the agent at 'unix:$SCRATCH/nope.sock'" $ctl --socket "unix:$SCRATCH/nope.sock" status

# ---- an expired last-known-good stays enforced as stale, across a restart ----
$ctl sign --key admin.key --org acme --serial 10 --valid-for 2s "$settings" >b10.json
expect "a short-lived bundle is applied" 0 '^applied serial 10$' $ctl --socket "$sock" push b10.json
sleep 2.1
check "once expired it is enforced as stale" wait_for 's["policy"]["state"], s["policy"]["serial"], s["eci"]["locked"]' "stale 10 True"
stop_agent
start_agent || fail "agent restarts"
check "after a restart the expired settings are still enforced as stale" \
        wait_for 's["policy"]["state"], s["policy"]["serial"], s["policy"]["source"], s["eci"]["locked"]' "stale 10 local True"
