#!/usr/bin/env bash
# The runc contract: stockade-runc driven directly, as runc's own tests drive runc (no
# engine): foreground and detached run clean up after themselves, the caller's files are
# never modified, help is runc's, a spec's own seccomp listener is refused, and a
# container is (runtime root, id).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
chmod 755 "$SCRATCH" # the containers' roots traverse it to their root filesystems
[[ $(id -u) -eq 0 ]] || { echo "SKIP: runc-cli tests need root"; exit 0; }
for tool in runc busybox python3; do
        command -v "$tool" >/dev/null || { echo "FAIL: runc-cli tests: missing $tool"; exit 1; }
done
docker_agent_config
on_exit docker_stop_agent
docker_start_agent || exit 1
roots=("$SCRATCH/root-a" "$SCRATCH/root-b")
# Whatever a failed case left: containers in both roots, then mounts under runDir.
on_exit 'for r in "${roots[@]}"; do for c in $(runc --root "$r" list -q 2>/dev/null); do runc --root "$r" delete --force "$c"; done; done >/dev/null 2>&1'
on_exit 'grep -F " $SCRATCH/run/" /proc/self/mountinfo | cut -d" " -f5 | sort -r | xargs -r -n1 umount -l'

rt=("$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/etc/stockaded.json" --root "${roots[0]}")
runtime() { "${rt[@]}" "$@"; }
rootfs=$SCRATCH/docker/data/rootfs-cli
mkdir -p "$rootfs/bin" "$rootfs/proc" "$rootfs/tmp"
cp "$(command -v busybox)" "$rootfs/bin/busybox"
for applet in sh echo sleep cat true id tty mount touch; do ln -sf busybox "$rootfs/bin/$applet"; done

# make_bundle DIR PYTHON-EDIT: a minimal spec in DIR/config.json, edited by a python
# expression on s.
make_bundle() {
        mkdir -p "$1"
        python3 - "$1/config.json" "$rootfs" "$2" <<'PY'
import json, sys
s = {"ociVersion": "1.0.2", "root": {"path": sys.argv[2]},
     "process": {"args": ["/bin/sh", "-c", "echo hello from $(id -u); exit 3"], "cwd": "/", "user": {"uid": 0, "gid": 0},
                 "env": ["PATH=/bin"]},
     "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
     "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]}}
exec(sys.argv[3])
json.dump(s, open(sys.argv[1], "w"), indent=1)
PY
}
# The ranges held (running containers and stopped ones not yet deleted).
registered() { "$ctl" --socket "unix:$SCRATCH/control.sock" status --json | python3 -c 'import json, sys; print(json.load(sys.stdin)["containers"]["ranges"])'; }
mounts_left() { grep -cF " $SCRATCH/run/containers" /proc/self/mountinfo; }
# nothing_left NAME: no range held, no mount left under runDir.
nothing_left() {
        local n m
        n=$(registered) m=$(mounts_left)
        if [[ $n == 0 && $m == 0 ]]; then pass "$1"; else fail "$1" "$n containers still registered, $m mounts left under runDir"; fi
}
base_of() { # ROOT ID: the first VM uid of the container's range
        local pid
        pid=$(runc --root "$1" state "$2" 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
        awk '{print $2}' "/proc/$pid/uid_map" 2>/dev/null
}

# ---- foreground run, twice with the same id and bundle ----
make_bundle "$SCRATCH/b-run" ""
sum=$(sha256sum <"$SCRATCH/b-run/config.json")
expect "foreground run: the output and exit status are forwarded" 3 '^hello from 0$' runtime run --bundle "$SCRATCH/b-run" fg
nothing_left "foreground run: range and mounts are given back"
expect "foreground run again, same id and bundle" 3 '^hello from 0$' runtime run --bundle "$SCRATCH/b-run" fg
nothing_left "foreground run again: range and mounts are given back"
[[ $(sha256sum <"$SCRATCH/b-run/config.json") == "$sum" ]] && pass "run leaves the bundle's config.json as it was" ||
        fail "run leaves the bundle's config.json as it was" "it was rewritten"
(cd "$SCRATCH/b-run" && expect "foreground run with the bundle as working directory" 3 '^hello from 0$' runtime run fg)
nothing_left "... and gives everything back"

# ---- a signal sent to the runtime reaches the container ----
make_bundle "$SCRATCH/b-trap" "s['process']['args'] = ['/bin/sh', '-c', 'trap \"echo got TERM; exit 42\" TERM; echo ready; sleep 30 & wait']"
"${rt[@]}" run --bundle "$SCRATCH/b-trap" trapped </dev/null >"$SCRATCH/trap.out" 2>&1 &
wrapper=$!
for _ in $(seq 50); do grep -q ready "$SCRATCH/trap.out" && break; sleep 0.1; done
kill -TERM "$wrapper"
wait "$wrapper"
rc=$?
if [[ $rc == 42 ]] && grep -q '^got TERM$' "$SCRATCH/trap.out"; then
        pass "SIGTERM to a foreground run reaches the container, its exit status comes back"
else
        fail "SIGTERM to a foreground run reaches the container, its exit status comes back" "exit status $rc: $(cat "$SCRATCH/trap.out")"
fi
nothing_left "... and everything is given back"

# ---- a foreground run whose runtime and runc are killed: the agent reclaims it ----
make_bundle "$SCRATCH/b-kill" "s['process']['args'] = ['/bin/sh', '-c', 'echo ready; exec sleep 300']"
"${rt[@]}" run --bundle "$SCRATCH/b-kill" killed </dev/null >"$SCRATCH/kill.out" 2>&1 &
wrapper=$!
for _ in $(seq 50); do grep -q ready "$SCRATCH/kill.out" && break; sleep 0.1; done
init=$(runc --root "${roots[0]}" state killed 2>/dev/null | python3 -c 'import json, sys; print(json.load(sys.stdin)["pid"])')
{ kill -KILL "$wrapper" $(pgrep -P "$wrapper") "$init"; wait "$wrapper"; } 2>/dev/null # (bash's "Killed" line too)
[[ $(registered) == 1 ]] && pass "SIGKILL to a foreground run: while runc keeps its state, the range stays held" ||
        fail "SIGKILL to a foreground run: while runc keeps its state, the range stays held" "$(registered) registered"
runc --root "${roots[0]}" delete --force killed # runc alone, as its user would clean up
for _ in $(seq 50); do [[ $(registered) == 0 && $(mounts_left) == 0 ]] && break; sleep 0.2; done
nothing_left "... once its init and runc's state are gone, the agent gives back range and mounts"
grep -q '/killed"' "$SCRATCH/state/ranges.json" && fail "... and ranges.json no longer has it" "$(cat "$SCRATCH/state/ranges.json")" ||
        pass "... and ranges.json no longer has it"
expect "... and the same id runs again" 3 '^hello from 0$' runtime run --bundle "$SCRATCH/b-run" killed
nothing_left "... and gives everything back"

# ---- a relative --console-socket is read in the bundle directory, as runc reads it ----
# console_receive SOCKET OUT: takes one console's pty master and copies what it shows to OUT.
console_receive() {
        python3 - "$1" "$2" <<'PY' &
import os, socket, sys
s = socket.socket(socket.AF_UNIX)
s.bind(sys.argv[1])
s.listen(1)
s.settimeout(20)
conn, _ = s.accept()
_, ancillary, _, _ = conn.recvmsg(1024, socket.CMSG_SPACE(4 * 4))
fds = [int.from_bytes(data[:4], "little") for level, kind, data in ancillary if kind == socket.SCM_RIGHTS]
out = b""
while True:
    try:
        chunk = os.read(fds[0], 4096)
    except OSError:  # EIO: the container closed its terminal
        break
    if not chunk:
        break
    out += chunk
open(sys.argv[2], "wb").write(out)
PY
        receiver=$!
        for _ in $(seq 50); do [[ -S $1 ]] && break; sleep 0.1; done
}
make_bundle "$SCRATCH/b-tty" "s['process']['terminal'] = True; s['process']['args'] = ['/bin/sh', '-c', 'echo on \$(tty)']
s['mounts'] += [{'destination': '/dev', 'type': 'tmpfs', 'source': 'tmpfs'},
                {'destination': '/dev/pts', 'type': 'devpts', 'source': 'devpts', 'options': ['newinstance', 'ptmxmode=0666']}]"
console_receive "$SCRATCH/b-tty/console.sock" "$SCRATCH/tty.out"
expect "run -d --bundle DIR --console-socket RELATIVE (the socket in DIR)" 0 '' sh -c '"$@" </dev/null 2>&1' _ \
        "${rt[@]}" run -d --bundle b-tty --console-socket console.sock tty-rel
wait "$receiver"
grep -q '^on /dev/pts/0' "$SCRATCH/tty.out" && pass "... the container's terminal reached the caller's socket" ||
        fail "... the container's terminal reached the caller's socket" "$(cat "$SCRATCH/tty.out" 2>/dev/null)"
runtime delete --force tty-rel >/dev/null 2>&1
rm -f "$SCRATCH/b-tty/console.sock"
console_receive "$SCRATCH/b-tty/console.sock" "$SCRATCH/tty.out"
(cd "$SCRATCH/b-tty" && expect "run -d --console-socket=RELATIVE from the bundle directory" 0 '' sh -c '"$@" </dev/null 2>&1' _ \
        "${rt[@]}" run -d --console-socket=console.sock tty-cwd)
wait "$receiver"
grep -q '^on /dev/pts/0' "$SCRATCH/tty.out" && pass "... the container's terminal reached the caller's socket" ||
        fail "... the container's terminal reached the caller's socket" "$(cat "$SCRATCH/tty.out" 2>/dev/null)"
runtime delete --force tty-cwd >/dev/null 2>&1
nothing_left "... and both give everything back"

# ---- remounting the whole root file system, as under runc ----
# An engine's root: an overlay over the image (Stockade mounts its own over the same layers).
ov=$SCRATCH/docker/data/overlay-cli
mkdir -p "$ov/upper" "$ov/work" "$ov/merged"
mount -t overlay overlay -o "lowerdir=$rootfs,upperdir=$ov/upper,workdir=$ov/work" "$ov/merged"
on_exit "umount -l '$ov/merged'"
make_bundle "$SCRATCH/b-remount" "s['root']['path'] = '$ov/merged'; s['process']['capabilities'] = {k: ['CAP_SYS_ADMIN'] for k in ('bounding', 'effective', 'permitted')}
s['process']['args'] = ['/bin/sh', '-c', 'mount -o remount,ro / && ! touch /x 2>/dev/null && echo -n \"ro, \" && mount -o remount,rw / && touch /x && echo rw again']"
expect "mount -o remount,ro / makes the root read-only, remount,rw makes it writable again" 0 '^ro, rw again$' runtime run --bundle "$SCRATCH/b-remount" remount
make_bundle "$SCRATCH/b-remount-ro" "s['root']['path'] = '$ov/merged'; s['process']['capabilities'] = {k: ['CAP_SYS_ADMIN'] for k in ('bounding', 'effective', 'permitted')}
s['root']['readonly'] = True
s['process']['args'] = ['/bin/sh', '-c', 'mount -o remount,rw / 2>&1; touch /x 2>/dev/null || echo still ro']"
expect "... a root the container started read-only stays read-only" 0 'still ro$' runtime run --bundle "$SCRATCH/b-remount-ro" remount-ro
nothing_left "... and both give everything back"

# ---- create leaves the caller's files alone ----
make_bundle "$SCRATCH/b-sleep" "s['process']['args'] = ['/bin/sleep', '300']"
sum=$(sha256sum <"$SCRATCH/b-sleep/config.json")
runtime create --bundle "$SCRATCH/b-sleep" created </dev/null >/dev/null 2>&1
[[ $(sha256sum <"$SCRATCH/b-sleep/config.json") == "$sum" ]] && pass "create leaves the bundle's config.json byte for byte" ||
        fail "create leaves the bundle's config.json byte for byte" "it was rewritten"
expect "runc's state names Stockade's copy of the bundle" 0 "\"bundle\": \"$SCRATCH/run/containers/" runtime state created
expect "delete after create" 0 '' runtime delete --force created
nothing_left "create + delete: range and mounts are given back"

# ---- run --detach, exec -p, delete ----
expect "run --detach" 0 '' sh -c "\"\$0\" --stockade-config '$SCRATCH/etc/stockaded.json' --root '${roots[0]}' run -d --bundle '$SCRATCH/b-sleep' detached </dev/null >/dev/null 2>&1" "$STOCKADE_BIN/stockade-runc"
expect "run --detach: the container runs" 0 '"status": "running"' runtime state detached
cat >"$SCRATCH/process.json" <<'JSON'
{"args": ["/bin/echo", "exec ok"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "env": ["PATH=/bin"]}
JSON
sum=$(sha256sum <"$SCRATCH/process.json")
expect "exec -p FILE" 0 '^exec ok$' runtime exec -p "$SCRATCH/process.json" detached
[[ $(sha256sum <"$SCRATCH/process.json") == "$sum" ]] && pass "exec -p leaves the process file as it was" ||
        fail "exec -p leaves the process file as it was" "it was rewritten"
expect "exec -p /dev/fd/N" 0 '^exec ok$' runtime exec -p <(cat "$SCRATCH/process.json") detached
sed 's|"/bin/echo", "exec ok"|"/bin/sh", "-c", "exit 7"|' "$SCRATCH/process.json" >"$SCRATCH/process-7.json"
expect "exec --process=FILE, exit status forwarded" 7 '' runtime exec --process="$SCRATCH/process-7.json" detached
expect "delete --force after run --detach" 0 '' runtime delete --force detached
nothing_left "run --detach + delete: range and mounts are given back"

# ---- runc 1.1's options keep working ----
(cd "$SCRATCH" && "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/etc/stockaded.json" -root "${roots[0]}" run --detach --pid-file flags.pid --no-pivot --no-new-keyring --preserve-fds 1 \
        -bundle="$SCRATCH/b-sleep" flags </dev/null >/dev/null 2>"$SCRATCH/flags.err" 3</dev/null)
pid=$(cat "$SCRATCH/flags.pid" 2>/dev/null)
[[ -n $pid && -e /proc/$pid ]] && pass "run --detach --pid-file (relative) --no-pivot --no-new-keyring --preserve-fds 1 -bundle=DIR" ||
        fail "run --detach --pid-file (relative) --no-pivot --no-new-keyring --preserve-fds 1 -bundle=DIR" "$(cat "$SCRATCH/flags.err")"
expect "exec --detach" 0 '' runtime exec --detach flags /bin/sh -c 'echo detached >/tmp/mark'
sleep 0.2
expect "... its process ran" 0 '^detached$' runtime exec flags cat /tmp/mark
expect "update -r FILE" 0 '' sh -c "echo '{\"pids\": {\"limit\": 100}}' | \"\$@\" update -r - flags" _ "${rt[@]}"
expect "kill --all" 0 '' runtime kill --all flags KILL
for _ in $(seq 50); do runtime state flags 2>/dev/null | grep -q '"stopped"' && break; sleep 0.1; done
expect "... the container stopped" 0 '"status": "stopped"' runtime state flags
expect "delete -f" 0 '' runtime delete -f flags
nothing_left "run --detach + kill --all + delete -f: range and mounts are given back"
expect "run --keep keeps the stopped container" 3 '^hello from 0$' runtime run --keep --bundle "$SCRATCH/b-run" kept
expect "... runc still has it" 0 '"status": "stopped"' runtime state kept
[[ $(registered) == 1 ]] && pass "... and so does Stockade" || fail "... and so does Stockade" "$(registered) registered"
expect "... until delete" 0 '' runtime delete kept
nothing_left "run --keep + delete: range and mounts are given back"

# ---- leftovers of a container runc forgot ----
runtime create --bundle "$SCRATCH/b-sleep" forgotten </dev/null >/dev/null 2>&1
runc --root "${roots[0]}" delete --force forgotten # runc alone: Stockade's mounts and range stay
# (a created container's init holds its stdio: none of it may be the test's pipe)
expect "create reclaims what a container of the same id left behind" 0 '' sh -c '"$@" </dev/null >/dev/null 2>&1' _ "${rt[@]}" create --bundle "$SCRATCH/b-sleep" forgotten
expect "... and delete gives it all back" 0 '' runtime delete --force forgotten
nothing_left "nothing left of the forgotten container"

# ---- help is runc's ----
expect "run -h prints runc's help" 0 'runc run - create and run a container' runtime run -h
expect "create --help prints runc's help" 0 'runc create - create a container' runtime create --help
expect "exec -h prints runc's help" 0 'runc exec - execute new process inside the container' runtime exec -h
expect "delete -h prints runc's help" 0 'runc delete - delete any resources held by the container' runtime delete -h
expect "--help prints runc's help" 0 'USAGE:' runtime --help
expect "checkpoint -h prints runc's help" 0 'runc checkpoint - checkpoint a running container' runtime checkpoint -h
expect "restore --help prints runc's help" 0 'runc restore - restore a container from a previous checkpoint' runtime restore --help
expect "checkpoint with -h and an id is still refused" 1 "^stockade: 'runc checkpoint' is refused" runtime checkpoint -h some-id
expect "an unknown command's -h gets runc's answer" 3 "No help topic for 'foo'" runtime foo -h

# ---- a spec's own seccomp listener ----
make_bundle "$SCRATCH/b-listener" "s['linux']['seccomp'] = {'defaultAction': 'SCMP_ACT_ALLOW', 'listenerPath': '$SCRATCH/evil.sock', 'syscalls': [{'names': ['mount'], 'action': 'SCMP_ACT_NOTIFY'}]}"
expect "a spec's own seccomp listenerPath is refused" 1 \
        "^stockade: the spec's seccomp listenerPath '$SCRATCH/evil.sock' is refused: the agent is the only seccomp listener a container may have$" \
        runtime create --bundle "$SCRATCH/b-listener" listener
nothing_left "the refused spec holds nothing"

# ---- (root, id): the same id under two roots ----
for r in a b; do
        make_bundle "$SCRATCH/b-twin-$r" "s['process']['args'] = ['/bin/sleep', '300']; s['linux']['cgroupsPath'] = '/stockade-cli-$$-$r'"
        "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/etc/stockaded.json" --root "$SCRATCH/root-$r" \
                run -d --bundle "$SCRATCH/b-twin-$r" twin </dev/null >/dev/null 2>"$SCRATCH/twin-$r.err" ||
                fail "run -d twin under root-$r" "$(cat "$SCRATCH/twin-$r.err")"
done
base_a=$(base_of "${roots[0]}" twin) base_b=$(base_of "${roots[1]}" twin)
if [[ -n $base_a && -n $base_b && $base_a != "$base_b" ]]; then
        pass "the same id under two roots gets two ranges ($base_a, $base_b)"
else
        fail "the same id under two roots gets two ranges" "'$base_a' and '$base_b'"
fi
runtime delete --force twin >/dev/null 2>&1
held=$("$ctl" --socket "unix:$SCRATCH/control.sock" status --json | python3 -c '
import json, sys
s = json.load(sys.stdin)["containers"]
print(s["ranges"], [c["uid_base"] for c in s["list"] if c["id"] == "twin"])')
if [[ -n $base_b && $held == "1 [$base_b]" ]] && runc --root "${roots[1]}" state twin 2>/dev/null | grep -q '"running"'; then
        pass "deleting it under one root leaves the other's range held"
else
        fail "deleting it under one root leaves the other's range held" "status: $held"
fi
"$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/etc/stockaded.json" --root "${roots[1]}" delete --force twin >/dev/null 2>&1
nothing_left "both twins deleted: everything given back"
