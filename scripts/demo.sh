#!/usr/bin/env bash
# make demo: a walk-through of Stockade in a scratch directory, cleaned up at the end.
STOCKADE_BIN=$(cd "${1:-build/bin}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
# The scratch directory and the cleanup on exit (every process, mount and file) are the
# integration tests' own, as is the Docker engine's setup.
. "$top/tests/integration/lib.sh"
. "$top/tests/integration/docker-lib.sh"
. "$top/scripts/quote.sh"
set -e
bin=$STOCKADE_BIN
work=$SCRATCH
# The commands are shown as they run: in the scratch directory, with the binaries just
# built first on PATH, each one quoted so that it can be pasted.
export PATH=$bin:$PATH
sock=unix:control.sock
holder=
stop_demo_agent() {
        [[ -n ${agent:-} ]] && { kill "$agent"; wait "$agent"; } 2>/dev/null || true
        [[ -n $holder ]] && { kill "$holder"; wait "$holder"; } 2>/dev/null || true
        agent= holder=
}
on_exit "chattr -R -i $work 2>/dev/null || true"
on_exit stop_demo_agent
cd "$work"

step() { printf '\n== %s\n' "$*"; }

# show CMD...: prints the command, then runs it.
show() {
        printf '$ %s\n' "$(quote "$@")" >&2
        "$@"
}
# show_to FILE CMD...: the same, with standard output to FILE.
show_to() {
        local file=$1; shift
        printf '$ %s >%s\n' "$(quote "$@")" "$(quote "$file")" >&2
        "$@" >"$file"
}

printf 'Commands run in %s with %s first on PATH.\n' "$work" "$bin"
cp "$top/tests/data/admin-settings.json" admin-settings.json

step "An administrator creates two signing keys (Ed25519 and ECDSA P-256)"
show stockadectl keygen --out admin1
show stockadectl keygen --type p256 --out admin2

step "A trust root that needs both keys to sign any settings bundle"
show_to root.json stockadectl root init --threshold 2 --key admin1.pub --key admin2.pub --sign admin1.key --sign admin2.key
echo "root.json: $(wc -c <root.json) bytes"

step "Signing admin-settings.json (ECI enabled and locked) as bundle serial 1"
show_to bundle.json stockadectl sign --key admin1.key --key admin2.key --org acme --serial 1 --valid-for 30d \
        admin-settings.json
echo "bundle.json: $(wc -c <bundle.json) bytes"

step "Verifying and recording it as the last-known-good settings"
show stockadectl verify --root root.json --org acme --state-dir offline-state --commit bundle.json | head -n 16
echo "  ..."

step "A tampered copy (one byte of the payload changed) is rejected"
python3 -c '
import base64, json
e = json.load(open("bundle.json"))
p = bytearray(base64.b64decode(e["payload"]))
p[p.index(b"\"value\":true")+8] ^= 0x01
e["payload"] = base64.b64encode(bytes(p)).decode()
json.dump(e, open("tampered.json", "w"))'
show stockadectl verify --root root.json --org acme tampered.json || echo "(exit status $?)"

step "Serial 2 replaces it; replaying serial 1 is refused: settings cannot be rolled back"
show_to bundle2.json stockadectl sign --key admin1.key --key admin2.key --org acme --serial 2 --valid-for 30d \
        admin-settings.json
show_to /dev/null stockadectl verify --root root.json --state-dir offline-state --commit bundle2.json
show stockadectl verify --root root.json --state-dir offline-state bundle.json || echo "(exit status $?)"

step "Effective settings: locked admin values win over the user's own choices"
echo '{"analyticsEnabled": true, "kubernetes.enabled": true}' >user-settings.json
show cat user-settings.json
show stockadectl settings show --state-dir offline-state --user-settings user-settings.json

step "The agent: stockaded starts with this root, in a private mount namespace of its own"
mkdir -p etc/stockade etc/docker
cp root.json etc/stockade/root.json
cat >etc/stockade/stockaded.json <<JSON
{"control": ["unix:$work/control.sock"], "stateDir": "$work/agent-state", "trustRoot": "$work/etc/stockade/root.json",
 "org": "acme", "engineConfig": "$work/etc/docker/daemon.json", "locks": ["$work/etc/docker/daemon.json", "$work/etc/stockade"]}
JSON
show cat etc/stockade/stockaded.json
# The demo's locks (read-only bind mounts) live and die with this namespace.
unshare -m --propagation private sleep infinity &
holder=$!
while [[ $(readlink /proc/$holder/ns/mnt) == $(readlink /proc/self/ns/mnt) ]]; do sleep 0.02; done
printf '$ %s 2>agent.log &\n' "$(quote nsenter -t "$holder" -m -- stockaded --config "$work/etc/stockade/stockaded.json")"
nsenter -t "$holder" -m -- stockaded --config "$work/etc/stockade/stockaded.json" 2>agent.log &
agent=$!
for _ in $(seq 100); do stockadectl --socket "$sock" status >/dev/null 2>&1 && break; sleep 0.05; done
show stockadectl --socket "$sock" status

step "Pushing the signed settings to the agent: ECI is locked, so the engine config is locked too"
show stockadectl --socket "$sock" push bundle2.json
show stockadectl --socket "$sock" status
show cat etc/docker/daemon.json
show nsenter -t "$holder" -m -- sh -c "echo {} >$work/etc/docker/daemon.json" || true

step "Tampering: unmounting the lock is noticed and undone within a second"
printf '$ %s >events.log &\n' "$(quote stockadectl --socket "$sock" events)"
stockadectl --socket "$sock" events >events.log &
events=$!
sleep 0.2
show nsenter -t "$holder" -m -- umount "$work/etc/docker/daemon.json"
sleep 1
kill "$events"; wait "$events" 2>/dev/null || true
show cat events.log
show stockadectl --socket "$sock" status

step "A rolled-back bundle pushed to the agent is refused, and the settings stay"
show stockadectl --socket "$sock" push bundle.json || echo "(exit status $?)"

step "Containers: a real Docker engine with stockade-runc as its runtime (and as its 'runc')"
stop_demo_agent
chattr -R -i "$work/etc" 2>/dev/null || true
docker_agent_config
cp root.json etc/root.json
docker_setup >/dev/null
stockadectl --socket "$sock" push bundle2.json >/dev/null
echo "dockerd is up in $work/docker, its default runtime $(docker info --format '{{.DefaultRuntime}}'); DOCKER_HOST=$DOCKER_HOST"
show docker run --rm stockade-test cat /proc/self/uid_map
show docker run --rm --runtime=runc stockade-test sh -c 'id; touch /made-by-root && ls -ln /made-by-root'

step "Escapes are refused: the VM's namespaces, its configuration, the engine socket"
show docker run --rm --network=host stockade-test true || echo "(exit status $?)"
show docker run --rm -v /etc:/host-etc stockade-test true || echo "(exit status $?)"
show docker run --rm -v "$work/docker.sock:/var/run/docker.sock" stockade-test true || echo "(exit status $?)"

step "--privileged is privileged only inside its own user namespace"
show docker run --rm --privileged stockade-test sh -c 'cat /proc/self/uid_map; echo x >/proc/sys/kernel/core_pattern' || echo "(exit status $?)"

step "Its mounts and device nodes are vetted by the agent: what containers need works, undoing isolation does not"
show docker run --rm --privileged -v demo-volume:/data:ro stockade-test sh -c '
mkdir -p /mnt && mount -t tmpfs none /mnt && echo "mount -t tmpfs: ok"
mount -o remount,rw /data || echo "remount of the read-only volume: refused"
umount /proc || echo "umount /proc: refused"
mknod /tmp/sda b 8 0 || echo "block device node: refused"' || echo "(exit status $?)"

step "The agent's view, with a container running that tried to make a block device"
docker run -d --privileged stockade-test sh -c 'mknod /tmp/sda b 8 0; exec sleep 600' >/dev/null 2>&1
sleep 0.5
show stockadectl --socket "$sock" status

step "Cleaning up: containers, dockerd, the agent, mounts and files"
set +e
