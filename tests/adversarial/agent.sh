#!/usr/bin/env bash
# Attacks on the agent that must not work, as a local VM user would try them:
#   1. starving the control API with idle connections, so that docker run and
#      stockadectl status fail;
#   2. tampering with a locked directory through a second bind mount of its parent or of
#      itself, where the lock's read-only mount does not cover it;
#   3. re-pinning the VM to another organisation (whose settings turn isolation off) by
#      signing in to it or pushing its bundle; one the trust root names ('beta') is taken.
. "$(dirname "$0")/../integration/lib.sh"
. "$STOCKADE_TOP/tests/integration/docker-lib.sh"
settings=$STOCKADE_TOP/tests/data/admin-settings.json
cd "$SCRATCH"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: agent attacks need root"; exit 0; }
. "$STOCKADE_TOP/tests/integration/agent-lib.sh"

# The agent (not the attacker) must cope with the default soft limit on open files.
ulimit -Sn 1024

# ---- an agent of its own, with a locked directory and no configured organisation ----
mkdir -p etc/stockade alt-parent alt-dir
chmod 755 "$SCRATCH"
on_exit "chattr -R -i $SCRATCH/etc 2>/dev/null"
sock=unix:$SCRATCH/agent.sock
$ctl keygen --out admin >/dev/null
$ctl root init --threshold 1 --key admin.pub --sign admin.key --org beta >etc/stockade/root.json
echo '{"log-level": "info"}' >etc/stockade/engine.conf
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=127.0.0.1 \
        -addext subjectAltName=IP:127.0.0.1 -keyout server.key -out server.pem 2>/dev/null
cat >etc/stockade/stockaded.json <<JSON
{"control": ["$sock"], "stateDir": "$SCRATCH/pin-state", "trustRoot": "$SCRATCH/etc/stockade/root.json",
 "engineConfig": "$SCRATCH/daemon.json", "runtime": "/usr/local/bin/stockade-runc", "runDir": "$SCRATCH/agent-run",
 "caFile": "$SCRATCH/server.pem", "refreshInterval": "60m", "locks": ["$SCRATCH/etc/stockade"]}
JSON
start_agent || { fail "agent starts"; exit 1; }
start_events

# ---- 2. a locked directory reached through another path ----
lock_dir=$SCRATCH/etc/stockade
# tamper_through NAME ALT: with ALT a writable path to the locked directory, clears its
# immutable attribute and adds a file; both must be undone within 2 s and reported on the
# locked path.
tamper_through() {
        local name=$1 alt=$2
        local before=$(status_field 's["locks"][0]["tamper_count"]')
        : >"$events"
        in_ns sh -c "chattr -i $alt && echo x >$alt/new.conf" ||
                { fail "$name: the tampering itself" "could not write through $alt"; return; }
        local problems=()
        for _ in $(seq 40); do
                problems=()
                in_ns test -e "$alt/new.conf" && problems+=("new.conf is still there")
                lsattr -d "$lock_dir" | cut -d' ' -f1 | grep -q i || problems+=("the directory is not immutable")
                grep -q "\"method\":\"lock.restored\".*\"path\":\"$lock_dir\"" "$events" || problems+=("no lock.restored for $lock_dir")
                [[ ${#problems[@]} -eq 0 ]] && break
                sleep 0.05
        done
        if [[ ${#problems[@]} -eq 0 ]] && grep -qE "\"method\":\"lock.tampered\".*\"path\":\"$lock_dir\".*\"what\":\"[^\"]*entries added" "$events" &&
           wait_for 's["locks"][0]["state"], s["locks"][0]["tamper_count"] > '"$before" "locked True" >/dev/null; then
                pass "$name: repaired and reported on $lock_dir"
        else
                fail "$name: repaired and reported on $lock_dir" "${problems[*]}; events: $(tail -c 400 "$events")"
        fi
}
in_ns mount --bind "$SCRATCH/etc" "$SCRATCH/alt-parent"
tamper_through "a second bind of the parent" "$SCRATCH/alt-parent/stockade"
in_ns mount --bind "$lock_dir" "$SCRATCH/alt-dir"
in_ns mount -o remount,bind,rw "$SCRATCH/alt-dir"
tamper_through "a writable bind of the directory itself" "$SCRATCH/alt-dir"

# ---- 3. the organisation is pinned ----
pinned="this VM is pinned to organisation 'acme'; 'evil' is refused"
$ctl sign --key admin.key --org acme --serial 1 --valid-for 30d "$settings" >acme.json
echo '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": false}}' >eci-off.json
$ctl sign --key admin.key --org evil --serial 100 --valid-for 30d eci-off.json >evil.json
expect "the first bundle (acme) is applied" 0 '^applied serial 1$' $ctl --socket "$sock" push acme.json
python3 "$STOCKADE_TOP/tests/unit/https-server.py" server.pem server.key evil.json >port.txt 2>server.log &
server_pid=$!
on_exit "kill $server_pid 2>/dev/null"
for _ in $(seq 100); do [[ -s port.txt ]] && break; sleep 0.05; done
echo good-token >token
expect "signing in to another organisation is refused" 1 "$pinned" \
        $ctl --socket "$sock" sign-in --org evil --user mallory --token-file token --url "https://127.0.0.1:$(cat port.txt)/settings"
expect "pushing another organisation's bundle is refused" 1 "rejected: $pinned" $ctl --socket "$sock" push evil.json
sleep 0.5 # what a fetch after the sign-in would have applied by now
check "acme's settings stay in force, isolation on" wait_for 's["policy"]["org"], s["policy"]["serial"], s["eci"]["enabled"], s["eci"]["locked"]' "acme 1 True True"
stop_agent
start_agent || fail "agent restarts"
expect "after a restart the VM is still pinned to acme" 1 "rejected: $pinned" $ctl --socket "$sock" push evil.json
$ctl sign --key admin.key --org beta --serial 2 --valid-for 30d "$settings" >beta.json
expect "the trust root's org 'beta' is taken by a VM pinned to acme" 0 '^applied serial 2$' $ctl --socket "$sock" push beta.json
check "beta's settings are in force" wait_for 's["policy"]["org"], s["policy"]["serial"]' "beta 2"
expect "after beta, another organisation is still refused" 1 "rejected: $pinned" $ctl --socket "$sock" push evil.json
stop_agent

# ---- 1. idle connections do not starve the control API ----
cat >hold.py <<'PY'
# hold.py SOCKET N: opens N connections to SOCKET and keeps them until stdin closes;
# prints how many connects succeeded.
import resource, socket, sys
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
held, connected = [], 0
for _ in range(int(sys.argv[2])):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(2)
    try:
        s.connect(sys.argv[1])
        connected += 1
    except OSError:
        pass
    held.append(s)
print("connected", connected, flush=True)
sys.stdin.read()
PY
chmod 644 hold.py
docker_agent_config '"group": "nogroup"'
docker_setup || exit 1
control=$SCRATCH/control.sock
# hold UID GID: as UID:GID (no other groups), holds 5000 connections until the test ends.
hold() {
        local fifo=$SCRATCH/hold-$1
        mkfifo "$fifo"
        setpriv --reuid "$1" --regid "$2" --clear-groups /usr/bin/python3 hold.py "$control" 5000 <"$fifo" >"$fifo.out" 2>&1 &
        on_exit "kill $! 2>/dev/null"
        exec {hold_fd}>"$fifo" # keeps the holder's stdin open
        for _ in $(seq 600); do grep -q connected "$fifo.out" && return; sleep 0.1; done
}
hold 65534 65534 # nobody, in the reader group nogroup
hold 65533 12345 # neither root nor a reader
# More than the agent's 1024 slots got through to it from the reader, whatever it did then.
[[ $(awk '/^connected/ {print $2}' hold-65534.out) -gt 1100 ]] && grep -q '^connected ' hold-65533.out ||
        fail "the attackers hold their connections" "$(cat hold-*.out)"
fds=$(ls /proc/"$AGENT_PID"/fd | wc -l)
[[ $fds -lt 200 ]] && pass "the agent holds few of the 10 000 connections ($fds fds)" ||
        fail "the agent holds few of the 10 000 connections" "$fds fds open"
# A starved agent makes these hang, hence the time limits.
expect "docker run works while 10 000 connections are held" 0 '^ +0 +100000 +65536$' \
        timeout 60 docker run --rm stockade-test cat /proc/self/uid_map
expect "stockadectl status works while 10 000 connections are held" 0 '^agent: +stockaded' \
        timeout 30 "$STOCKADE_BIN/stockadectl" --socket "unix:$control" status
