#!/usr/bin/env bash
# Attacks on stockade-runc, each as an attacker performed it against a real Docker engine
# wired to Stockade (or, where the engine never sends such a spec, against the runtime
# directly): every one must fail, with its reason.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require

share=$SCRATCH/share
mkdir -p "$share/harmless"
# The only host share is $share: everything else of the VM is restricted.
docker_agent_config "\"hostShares\": [\"$share\"]"
docker_setup || exit 1
img=stockade-test
run() { docker_run "$@"; }

# ---- 1. VM root by default: no VM directory outside the host shares ----
for dir in /usr/local/share /usr/sbin /usr/local/bin /usr/lib/systemd/system /usr/lib /var/tmp "$SCRATCH/path"; do
        mkdir -p "$dir"
        expect "-v $dir is refused" 125 "stockade: can't mount $dir: restricted VM path" run -v "$dir:/x" $img touch /x/planted
        [[ -e $dir/planted ]] && { fail "-v $dir left a file behind"; rm -f "$dir/planted"; }
done
expect "a file in the host share is allowed" 0 '^0 0$' run -v "$share:/x" $img sh -c 'touch /x/mine && stat -c "%u %g" /x/mine'

runtime() { "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/etc/stockaded.json" --root "$SCRATCH/runc-root" "$@"; }
bundle=$SCRATCH/bundle
rootfs=$SCRATCH/docker/data/rootfs-direct
mkdir -p "$bundle" "$rootfs"
# make_spec PYTHON-EDIT: a minimal spec, edited by a python expression on s.
make_spec() {
        python3 - "$bundle/config.json" "$rootfs" "$1" <<'PY'
import json, sys
s = {"ociVersion": "1.0.2", "root": {"path": sys.argv[2]},
     "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
     "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
     "linux": {"namespaces": [{"type": t} for t in ("pid", "network", "ipc", "uts", "mount")]}}
exec(sys.argv[3])
json.dump(s, open(sys.argv[1], "w"))
PY
}

# ---- 2. the symlink race on a bind source ----
# A container flips share/link between /etc and a harmless directory while the runtime
# makes binds of the link over and over (as it does for "docker run -v share/link:/x",
# without the engine's own second or so per container): a bind must never show /etc.
cp -a "$SCRATCH/image/." "$rootfs/"
make_spec "s['mounts'].append({'destination': '/x', 'type': 'bind', 'source': '$share/link', 'options': ['rbind']}); s['process']['args'] = ['/bin/true']"
tries=150
docker run -d --name flipper -v "$share:/s" $img sh -c \
        "i=0; while [ ! -e /s/stop ]; do ln -sfn /etc /s/link; ln -sfn harmless /s/link; usleep 2000; i=\$((i + 1)); done; echo \$i >/s/flips-done" \
        >/dev/null 2>&1
for _ in $(seq 100); do [[ -L $share/link ]] && break; sleep 0.1; done
runs=0 won=0 mounted=0
while [[ $runs -lt $tries ]] && docker ps -q --filter name=flipper | grep -q .; do
        id=race$runs
        runs=$((runs + 1))
        runtime create --bundle "$bundle" "$id" >/dev/null 2>&1 || continue
        mounted=$((mounted + 1))
        bound=$(echo "$SCRATCH"/run/containers/*-"$id"/mounts/0) # runDir/containers/HASH-OF-ROOT-ID
        [[ -e $bound/os-release || -e $bound/passwd ]] && won=$((won + 1))
        runtime delete --force "$id" >/dev/null 2>&1
done
touch "$share/stop"
for _ in $(seq 100); do [[ -s $share/flips-done ]] && break; sleep 0.1; done
flips=$(cat "$share/flips-done" 2>/dev/null)
docker rm -f flipper >/dev/null 2>&1
# Some binds refused: the link named /etc when they were made, so the race was run.
if [[ $runs -eq $tries && ${flips:-0} -gt 0 && $won -eq 0 && $mounted -gt 0 && $mounted -lt $runs ]]; then
        pass "symlink race: $runs binds tried during $flips flips ($mounted of the harmless directory, the rest refused), /etc never shown"
else
        fail "symlink race" "flips ${flips:-unfinished}, $runs of $tries binds tried, $mounted made, $won showed /etc"
fi

# ---- 3. volumes inside restricted directories ----
# Each restricted root of the agent: the engine's data and config, Stockade's own, containerd's.
n=0
for root in "$SCRATCH/docker/data" "$SCRATCH/docker/data/overlay2" "$SCRATCH/state" "$SCRATCH/run" "$SCRATCH/etc" \
        /var/lib/docker /etc/containerd /run/containerd /run/docker; do
        [[ -d $root ]] || continue
        inside=$(find "$root" -mindepth 1 -maxdepth 1 -type d 2>/dev/null | head -1)
        for device in "$root" ${inside:+"$inside"}; do
                n=$((n + 1))
                docker volume create -d local -o type=none -o o=bind -o "device=$device" "restricted$n" >/dev/null
                expect "a volume binding $device is refused" 125 "stockade: can't mount .*/volumes/restricted$n/_data: restricted VM path" \
                        run -v "restricted$n:/x" $img true
                docker volume rm "restricted$n" >/dev/null 2>&1
        done
done
docker volume create -d local -o type=none -o o=bind -o "device=$share/harmless" sharevol >/dev/null
expect "a volume binding a directory in the host share is allowed" 0 '^ok$' run -v sharevol:/x $img sh -c 'touch /x/v && echo ok'
docker volume create -d local -o type=tmpfs -o device=tmpfs tmpvol >/dev/null
expect "a tmpfs volume is allowed" 0 '^ok$' run -v tmpvol:/x $img sh -c 'touch /x/v && echo ok'
expect "the engine's volume database is refused" 125 "restricted VM path" run -v "$SCRATCH/docker/data/volumes/metadata.db:/x" $img true

# ---- 7. spec fields the engine never sends, given to the runtime directly ----
make_spec "s['hooks'] = {'prestart': [{'path': '/bin/sh', 'args': ['sh', '-c', 'touch $SCRATCH/hooked']}]}"
expect "a hook that runs a VM binary is refused" 1 "stockade: hook '/bin/sh' is not allowed" runtime create --bundle "$bundle" hooked
make_spec 's["annotations"] = {"org.systemd.property.ExecStopPost": "/bin/sh"}'
expect "a runtime annotation is refused" 1 "stockade: annotation 'org.systemd.property.ExecStopPost' is not allowed" \
        runtime create --bundle "$bundle" annotated
make_spec 's["root"]["path"] = "/"'
expect "root.path / is refused" 1 "stockade: the root filesystem '/' is not an engine's container storage" runtime create --bundle "$bundle" vmroot
make_spec 's["linux"]["resources"] = {"devices": [{"allow": True, "access": "rwm"}]}; s["process"]["args"] = ["/bin/sh"]'
unshare --net sleep 60 &
netns_pid=$!
on_exit "kill $netns_pid 2>/dev/null"
sleep 0.2
make_spec "s['linux']['namespaces'][1]['path'] = '/proc/$netns_pid/ns/net'"
expect "a foreign network namespace is refused" 1 "stockade: can't join the network namespace '/proc/$netns_pid/ns/net': it is not a Stockade container's" \
        runtime create --bundle "$bundle" foreign
# A network namespace whose user namespace maps a range as a Stockade container's does,
# a range no container holds: the agent does not give it out.
unshare --user --net sleep 60 &
lookalike_pid=$!
on_exit "kill $lookalike_pid 2>/dev/null"
for _ in $(seq 50); do
        u=$(readlink /proc/$lookalike_pid/ns/user)
        [[ -n $u && $u != $(readlink /proc/self/ns/user) ]] && break
        sleep 0.05
done
echo "0 296608 65536" >/proc/$lookalike_pid/uid_map && echo "0 296608 65536" >/proc/$lookalike_pid/gid_map
make_spec "s['linux']['namespaces'][1]['path'] = '/proc/$lookalike_pid/ns/net'"
expect "a namespace of a look-alike user namespace is refused" 1 "stockade: no uid range for container 'lookalike': no container holds the uid range 296608" \
        runtime create --bundle "$bundle" lookalike
make_spec "s['linux']['namespaces'].append({'type': 'user', 'path': '/proc/$netns_pid/ns/user'})"
expect "a user namespace path is refused" 1 "stockade: containers can't join the user namespace" runtime create --bundle "$bundle" userns
make_spec "s['linux']['namespaces'][4]['path'] = '/proc/1/ns/mnt'"
expect "a mount namespace path is refused" 1 "stockade: containers can't join the mount namespace '/proc/1/ns/mnt'" runtime create --bundle "$bundle" mntns
# Keys runc reads otherwise: its decoder takes the last of two alike keys (in either case),
# cJSON the first. With a second "linux" of no namespaces, runc would have run the container
# in the VM's namespaces had Stockade rewritten only the first.
make_spec 'pass'
python3 - "$bundle/config.json" <<'PY'
import sys
text = open(sys.argv[1]).read()
open(sys.argv[1], "w").write(text[:-1] + ', "linux": {"namespaces": []}}')
PY
expect "a spec naming 'linux' twice is refused" 1 "stockade: config.json names 'linux' twice in one object" \
        runtime create --bundle "$bundle" twice
printf '{"args": ["/bin/sh"], "cwd": "/", "user": {"uid": 0, "gid": 0}, "capabilities": {"bounding": []}, "capabilities": {"bounding": ["CAP_SYS_MODULE"]}}' \
        >"$SCRATCH/process.json"
expect "a process spec naming 'capabilities' twice is refused" 1 "stockade: the process spec names 'capabilities' twice in one object" \
        runtime exec --process "$SCRATCH/process.json" twice
expect "runc restore is refused" 1 "stockade: 'runc restore' is refused" runtime restore --bundle "$bundle" restored
expect "runc checkpoint is refused" 1 "stockade: 'runc checkpoint' is refused" runtime checkpoint restored
[[ -e $SCRATCH/hooked ]] && fail "the hook ran"

# An agent's reply without a uid_base must not become a mapping of the VM's root.
python3 "$STOCKADE_TOP/tests/adversarial/fake-agent.py" "$SCRATCH/fake.sock" \
        '{"isolate": true, "count": 65536, "restricted": [], "shares": [], "storage": ["'"$SCRATCH/docker/data"'"]}' >fake.out 2>&1 &
fake_pid=$!
on_exit "kill $fake_pid 2>/dev/null"
for _ in $(seq 50); do grep -q listening fake.out 2>/dev/null && break; sleep 0.1; done
mkdir -p "$SCRATCH/fake-etc"
printf '{"control": ["unix:%s"], "runc": "%s", "runDir": "%s"}' "$SCRATCH/fake.sock" "$(command -v runc)" "$SCRATCH/run" \
        >"$SCRATCH/fake-etc/stockaded.json"
make_spec 'pass'
expect "a reply without uid_base is refused" 1 "stockade: the agent's reply is malformed" \
        "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/fake-etc/stockaded.json" --root "$SCRATCH/runc-root" create --bundle "$bundle" nobase
kill $fake_pid 2>/dev/null

# A configuration anyone may write would choose the runc binary and the agent.
mkdir -p "$SCRATCH/loose"
cp "$SCRATCH/etc/stockaded.json" "$SCRATCH/loose/stockaded.json"
chmod 666 "$SCRATCH/loose/stockaded.json"
expect "a configuration others may write is refused" 1 "cannot read the configuration '$SCRATCH/loose/stockaded.json': it must be root's" \
        "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/loose/stockaded.json" state x
chmod 644 "$SCRATCH/loose/stockaded.json"
chown nobody "$SCRATCH/loose"
expect "a configuration in a directory of another user is refused" 1 "it must be root's" \
        "$STOCKADE_BIN/stockade-runc" --stockade-config "$SCRATCH/loose/stockaded.json" state x
chown root "$SCRATCH/loose"

# Not one of these left a range behind.
ranges=$("$STOCKADE_BIN/stockadectl" --socket "unix:$SCRATCH/control.sock" status --json |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["containers"]["ranges"])')
[[ $ranges == 0 ]] && pass "refused containers give their ranges back" || fail "refused containers give their ranges back" "$ranges held"
