#!/usr/bin/env bash
# stockade-runc under a real Docker engine (Debian's docker.io, own data root and socket in
# a scratch directory) with the real agent: user namespaces, refused namespaces and paths,
# ID-mapped files, --privileged, and the engine's everyday commands.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require

# A trust root of the test's own, for the settings pushed below.
docker_admin_init
status_field() {
        "$ctl" --socket "unix:$SCRATCH/control.sock" status --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"
}

docker_agent_config
docker_setup || exit 1
img=stockade-test
run() { docker_run "$@"; }

# ---- user namespaces ----
expect "docker run: uid_map is 0 100000 65536" 0 '^ +0 +100000 +65536$' run $img cat /proc/self/uid_map
expect "--runtime=runc is isolated the same way" 0 '^ +0 +100000 +65536$' run --runtime=runc $img cat /proc/self/uid_map
expect "--userns=host is isolated the same way" 0 '^ +0 +100000 +65536$' run --userns=host $img cat /proc/self/uid_map
docker run -d --name first $img sleep 60 >/dev/null 2>&1
docker run -d --name second $img sleep 60 >/dev/null 2>&1
m1=$(docker exec first cat /proc/self/uid_map 2>&1 | awk '{print $2}')
m2=$(docker exec second cat /proc/self/uid_map 2>&1 | awk '{print $2}')
if [[ $m1 =~ ^[0-9]+$ && $m2 =~ ^[0-9]+$ && $m1 != "$m2" && $(( m1 > m2 ? m1 - m2 : m2 - m1 )) -ge 65536 ]] &&
   [[ $(status_field 's["containers"]["running"]') == 2 ]]; then
        pass "two containers at once get non-overlapping ranges ($m1, $m2)"
else
        fail "two containers at once get non-overlapping ranges" "'$m1' '$m2'"
fi
docker rm -f first second >/dev/null 2>&1
if [[ $(status_field 's["containers"]["ranges"]') == 0 ]] && [[ $(run $img cat /proc/self/uid_map | awk '{print $2}') == 100000 ]]; then
        pass "removed containers give their ranges back"
else
        fail "removed containers give their ranges back" "ranges: $(status_field 's["containers"]["ranges"]')"
fi

# ---- the VM's namespaces ----
for ns in network pid ipc uts; do
        flag=$ns; [[ $ns == network ]] && flag=network
        expect "--$flag=host is refused" 125 "stockade: containers can't share the $ns namespace with the VM" run --$flag=host $img true
done

# ---- restricted paths ----
expect "-v /etc is refused" 125 "stockade: can't mount /etc: restricted VM path" run -v /etc:/x $img true
mkdir -p /var/lib/docker 2>/dev/null
expect "-v /var/lib/docker is refused" 125 "stockade: can't mount /var/lib/docker: restricted VM path" run -v /var/lib/docker:/x $img true
expect "the engine's data root is refused" 125 "restricted VM path" run -v "$SCRATCH/docker/data:/x" $img true
expect "the engine socket is refused" 125 "stockade: can't mount $SCRATCH/docker.sock: the engine socket is only for the admin's allowed images" \
        run -v "$SCRATCH/docker.sock:/var/run/docker.sock" $img true
docker volume create -d local -o type=none -o o=bind -o device=/etc etcvol >/dev/null
expect "a volume that binds /etc is refused" 125 "stockade: can't mount .*/volumes/etcvol/_data: restricted VM path" run -v etcvol:/x $img true
docker tag $img allowed/tool:1.0
# Pinned by the image's ID: tags are matched at their registry (tests/integration/engine-socket.sh).
push_settings '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true,
  "dockerSocketMount": {"imageList": {"images": ["allowed/tool@'"$(docker image inspect -f '{{.Id}}' $img)"'"]}}}}'
expect "the engine socket is allowed for an image in imageList" 0 '^socket$' \
        run -v "$SCRATCH/docker.sock:/var/run/docker.sock" allowed/tool:1.0 sh -c 'test -S /var/run/docker.sock && echo socket'
printf 'FROM %s\nLABEL other=1\n' $img | docker build -q -t other/image - >/dev/null 2>&1
expect "the engine socket is still refused for other images" 125 "the engine socket is only for the admin's allowed images" \
        run -v "$SCRATCH/docker.sock:/var/run/docker.sock" other/image true

# ---- ID-mapped files ----
mkdir -p shared && echo "from the VM" >shared/vm-file && chown 0:0 shared/vm-file
expect "a VM-root file reads as root's inside" 0 '^0 0 from the VM$' run -v "$SCRATCH/shared:/data" $img sh -c 'stat -c "%u %g" /data/vm-file | tr "\n" " "; cat /data/vm-file'
run -v "$SCRATCH/shared:/data" $img sh -c 'echo made inside >/data/inside' >/dev/null
if [[ $(stat -c '%u %g' shared/inside 2>/dev/null) == "0 0" && $(cat shared/inside) == "made inside" ]]; then
        pass "a file created inside is owned by VM uid 0 outside"
else
        fail "a file created inside is owned by VM uid 0 outside" "$(stat -c '%u %g' shared/inside 2>&1)"
fi
docker volume create data >/dev/null
docker run -d --name writer -v data:/v $img sh -c 'echo one >/v/f; sleep 60' >/dev/null 2>&1
sleep 0.5
expect "a named volume written by one container is read and written by a second" 0 '^one two$' \
        run -v data:/v $img sh -c 'echo two >>/v/f; tr "\n" " " </v/f | sed "s/ $//"'
docker rm -f writer >/dev/null 2>&1

mkdir -p elsewhere
push_settings '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true},
  "filesharingAllowedDirectories": [{"path": "'"$SCRATCH/shared"'", "sharedByDefault": true}]}'
expect "with filesharingAllowedDirectories set, an allowed directory mounts" 0 '^from the VM$' run -v "$SCRATCH/shared:/data" $img cat /data/vm-file
expect "with filesharingAllowedDirectories set, another directory is refused" 125 \
        "stockade: can't mount $SCRATCH/elsewhere: restricted VM path" run -v "$SCRATCH/elsewhere:/data" $img true
expect "with filesharingAllowedDirectories set, named volumes still work" 0 '^one$' run -v data:/v $img head -1 /v/f

# ---- --privileged: privileged only inside its namespace ----
# Docker 20.10 grants every capability it knows (through CAP_AUDIT_READ, bit 37), less
# those the runtime lacks (CAP_SYS_RESOURCE on this machine).
expect "--privileged: full capabilities inside" 0 '^CapEff=CapBnd, CAP_SYS_ADMIN$' run --privileged $img sh -c \
        'eff=$(awk "/CapEff/ {print \$2}" /proc/self/status); bnd=$(awk "/CapBnd/ {print \$2}" /proc/self/status);
         [ "$eff" = "$bnd" ] && [ $(( 0x$eff >> 21 & 1 )) = 1 ] && echo "CapEff=CapBnd, CAP_SYS_ADMIN" || echo "$eff $bnd"'

expect "--privileged: core_pattern is not writable" 1 'Read-only file system|Permission denied' run --privileged $img sh -c 'echo x >/proc/sys/kernel/core_pattern'
if [[ -e /proc/sysrq-trigger ]]; then
        expect "--privileged: sysrq-trigger is not writable" 1 'Read-only file system|Permission denied' run --privileged $img sh -c 'echo h >/proc/sysrq-trigger'
else
        echo "SKIP: --privileged: sysrq-trigger: this kernel has none"
fi
vmdev=$(awk '$5 == "/" {print $10; exit}' /proc/self/mountinfo)
expect "--privileged: the VM's block device cannot be mounted" 1 'mount:' run --privileged $img sh -c "mkdir -p /m; mount $vmdev /m"
expect "--privileged: no host block devices" 0 '^none$' run --privileged $img sh -c "ls /dev | grep -E '^(vd|sd|nvme|loop[0-9])' || echo none"
expect "--privileged: module loading is refused" 1 'Operation not permitted' run --privileged $img sh -c 'echo x >/m.ko; insmod /m.ko'
expect "AF_VSOCK sockets are refused" 1 '^socket\(AF_VSOCK\): Operation not permitted$' run $img vsock-probe
expect "AF_VSOCK sockets are refused with --privileged" 1 '^socket\(AF_VSOCK\): Operation not permitted$' run --privileged $img vsock-probe

# ---- everyday commands behave as with runc ----
docker run -d --name daemon $img sh -c 'echo hello from logs; sleep 60' >/dev/null 2>&1
sleep 0.5
expect "docker exec" 0 '^ +0 +100000 +65536$' docker exec daemon cat /proc/self/uid_map
expect "docker exec --privileged" 0 'CapEff' docker exec --privileged daemon grep CapEff /proc/self/status
expect "docker logs" 0 '^hello from logs$' docker logs daemon
expect "docker restart" 0 '^daemon$' docker restart -t 1 daemon
expect "docker kill" 0 '^daemon$' docker kill daemon
expect "docker rm -f" 0 '^daemon$' docker rm -f daemon
docker run -d --name stopper $img sleep 60 >/dev/null 2>&1
expect "docker stop" 0 '^stopper$' docker stop -t 1 stopper
docker rm stopper >/dev/null 2>&1
expect "docker run --init" 0 '^1 docker-init' run --init $img sh -c 'ps -o pid,args | awk "\$1 == 1 {print \$1, \$2}" | sed "s|/sbin/||;s|/dev/init|docker-init|"'
expect "docker run -t gets a terminal" 0 'tty' run -t $img sh -c 'test -t 1 && echo tty'
expect "a container's exit code" 42 '' run $img sh -c 'exit 42'

# ---- isolation off, and the agent away ----
push_settings '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": false, "value": false}}'
expect "with isolation off the container is not remapped" 0 '^ +0 +0 +4294967295$' run $img cat /proc/self/uid_map
push_settings '{"configurationFileVersion": 2, "enhancedContainerIsolation": {"locked": true, "value": true}}'
docker_stop_agent
expect "agent stopped with isolation locked: docker run fails clearly" 125 \
        'stockade: the Stockade agent is not reachable at .*: containers are not started without isolation' run $img true
docker_start_agent
expect "the agent back: containers start isolated" 0 '^ +0 +100000 +65536$' run $img cat /proc/self/uid_map
