#!/bin/bash
# Runs inside the guest (tests/vm/run.sh puts it on the PAYLOAD disk; the guest's
# stockade-vm-check.service runs it once the machine is up). One PASS:/FAIL:/SKIP: line per
# check, each naming what it saw when it fails. Nothing here leaves the guest: no network,
# vsock only through the loopback transport (CID 1).
set -u
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
k=$(uname -r | cut -d. -f1,2)
img=vmtest/busybox
tmp=$(mktemp -d)

pass() { echo "PASS: $k: $1"; }
fail() { echo "FAIL: $k: $1${2:+ ($2)}"; }
skip() { echo "SKIP: $k: $1${2:+ ($2)}"; }
# One line of what a command printed, for a failure's reason, with the kernel's last
# overlayfs complaint when there is one (EINVAL alone does not say which option).
oneline() {
        local kmsg
        kmsg=$(dmesg 2>/dev/null | grep -o 'overlayfs: unrecognized mount option.*' | tail -n 1)
        { tr '\n' ' ' <"$1" | sed 's/  */ /g' | cut -c1-300; } | tr -d '\n'
        [[ -n $kmsg ]] && grep -q 'overlay' "$1" && printf ' [dmesg: %s]' "$kmsg"
        echo
}
mono() { systemctl show -P "$2" "$1"; }
ctl() { timeout 20 stockadectl "$@"; }
drun() { timeout 180 docker run --rm "$@"; }

echo "# guest kernel $(uname -r), $(nproc) CPUs, up $(cut -d' ' -f1 /proc/uptime) s"

# Powers the guest off a few seconds after this script ends (the runner must still print
# its END marker). A transient timer, as minbase has no D-Bus for systemd-run.
poweroff_soon() {
        printf '[Timer]\nOnActiveSec=3\n' >/run/systemd/system/vm-poweroff.timer
        printf '[Service]\nExecStart=/bin/systemctl poweroff\n' >/run/systemd/system/vm-poweroff.service
        systemctl daemon-reload && systemctl start vm-poweroff.timer
}

# ---- a second boot of the same disk (run.sh boots the first kernel's disk twice) ----
state=/var/lib/stockade-vm-test
if [[ -e $state/first-boot ]]; then
        echo "# second boot of this disk"
        status=$(systemctl show -P StatusText stockaded.service)
        if [[ $status == *"from acme"* && $status == *"ECI locked"* ]]; then
                pass "reboot: the last verified settings are enforced from boot, no network ('$status')"
        else
                fail "reboot: the last verified settings are enforced from boot" "STATUS='$status'"
        fi
        if ctl status --json >"$tmp/status" 2>&1 && grep -Eq '"serial":[[:space:]]*1[,[:space:]]' "$tmp/status" &&
                grep -Eq '"serial":[[:space:]]*1[,[:space:]}]' /var/lib/stockade/state.json; then
                pass "reboot: serial 1 in force and kept in state.json"
        else
                fail "reboot: serial 1 in force and kept in state.json" "$(oneline /var/lib/stockade/state.json)"
        fi
        if (echo '{}' >>/etc/docker/daemon.json) 2>/dev/null; then
                fail "reboot: /etc/docker/daemon.json is locked again" "the write succeeded"
        else
                pass "reboot: /etc/docker/daemon.json is locked again"
        fi
        before=$(cat "$state/survivor-map" 2>/dev/null)
        if [[ $(docker inspect -f '{{.State.Running}}' survivor 2>&1) == true ]]; then
                skip "reboot: the range of a container that did not survive is free" "it survived"
        else
                map=$(drun "$img" cat /proc/self/uid_map 2>"$tmp/err" | tr -s ' ' | sed 's/^ //')
                if [[ -n $before && $map == "$before" ]]; then
                        pass "reboot: the range of a container that did not survive is free again ('$map')"
                else
                        fail "reboot: the range of a container that did not survive is free again" \
                                "before the reboot '$before', now '$map': $(oneline "$tmp/err")"
                fi
        fi
        rm -rf "$tmp"
        poweroff_soon
        exit 0
fi

# ---- how Stockade was installed: run.sh boots a disk installed from the Debian package
# with "stockade.install=package" on the kernel command line ----
if grep -qw 'stockade.install=package' /proc/cmdline; then
        status=$(dpkg-query -W -f='${Status} ${Version}' stockade 2>&1)
        if [[ $status == "install ok installed "* && $(command -v stockaded) == /usr/bin/stockaded &&
                $(systemctl is-enabled stockaded.socket stockaded.service 2>&1 | tr '\n' ' ') == "enabled enabled " ]]; then
                pass "installed from the Debian package ($status): /usr/bin/stockaded, its units enabled by the package"
        else
                fail "installed from the Debian package" "dpkg: '$status', stockaded: '$(command -v stockaded)', units: $(systemctl is-enabled stockaded.socket stockaded.service 2>&1 | tr '\n' ' ')"
        fi
else
        echo "# Stockade installed with make install: $(command -v stockaded)"
fi

# ---- order: socket, then the agent ready, then containerd, then dockerd ----
sock=$(mono stockaded.socket ActiveEnterTimestampMonotonic)
agent_start=$(mono stockaded.service ExecMainStartTimestampMonotonic)
agent_ready=$(mono stockaded.service ActiveEnterTimestampMonotonic)
ctrd=$(mono containerd.service ExecMainStartTimestampMonotonic)
dockerd=$(mono docker.service ExecMainStartTimestampMonotonic)
order="socket $sock, agent started $agent_start, ready $agent_ready, containerd $ctrd, dockerd $dockerd (us)"
if [[ $sock -gt 0 && $agent_ready -gt 0 && $ctrd -gt 0 && $dockerd -gt 0 && $sock -le $agent_start &&
        $agent_ready -le $ctrd && $agent_ready -le $dockerd ]]; then
        pass "order at boot: $order"
else
        fail "order at boot: the agent is ready before containerd and dockerd start, its socket first" "$order"
fi
if [[ $(systemctl show -P Type stockaded.service) == notify ]]; then
        pass "stockaded.service is Type=notify (active means READY=1 was sent)"
else
        fail "stockaded.service is Type=notify" "$(systemctl show -P Type stockaded.service)"
fi

# ---- locks in force from boot under the shipped unit ----
for f in /etc/docker/daemon.json /etc/stockade/stockaded.json; do
        if (echo '{}' >>"$f") 2>"$tmp/err"; then
                fail "locked from boot: writing $f fails" "the write succeeded"
        else
                pass "locked from boot: writing $f fails: $(oneline "$tmp/err")"
        fi
done
agent_pid=$(systemctl show -P MainPID stockaded.service)
if [[ $(readlink /proc/"$agent_pid"/ns/mnt) == "$(readlink /proc/1/ns/mnt)" ]]; then
        pass "the agent runs in the VM's mount namespace"
else
        fail "the agent runs in the VM's mount namespace" "its is $(readlink /proc/"$agent_pid"/ns/mnt), PID 1's $(readlink /proc/1/ns/mnt)"
fi
if findmnt -n -o OPTIONS /etc/docker/daemon.json 2>/dev/null | grep -q '^ro'; then
        pass "locked from boot: /etc/docker/daemon.json is a read-only mount in the VM's namespace"
else
        fail "locked from boot: /etc/docker/daemon.json is a read-only mount in the VM's namespace" \
                "findmnt: '$(findmnt -n /etc/docker/daemon.json)'"
fi
if touch /etc/stockade/new-file 2>/dev/null; then
        fail "locked from boot: creating a file in /etc/stockade fails" "it was created"
        rm -f /etc/stockade/new-file
else
        pass "locked from boot: creating a file in /etc/stockade fails"
fi
if grep -q '"default-runtime":[[:space:]]*"stockade"' /etc/docker/daemon.json; then
        pass "daemon.json names stockade as the default runtime"
else
        fail "daemon.json names stockade as the default runtime" "$(oneline /etc/docker/daemon.json)"
fi

# ---- status and events over vsock (loopback transport, CID 1) ----
modprobe vsock_loopback 2>/dev/null
if ctl status --socket vsock:1:5100 --json >"$tmp/status" 2>"$tmp/err" && grep -q '"locks"' "$tmp/status"; then
        pass "status over vsock:1:5100 (the agent accepts CID 1, configured for the test)"
else
        fail "status over vsock:1:5100" "$(oneline "$tmp/err") $(head -c 200 "$tmp/status")"
fi
if ctl status --socket vsock:1:5101 >"$tmp/out" 2>&1; then
        fail "vsock:2:5101 refuses a peer that is not CID 2" "status answered: $(oneline "$tmp/out")"
else
        pass "vsock:2:5101 refuses a peer that is not CID 2: $(oneline "$tmp/out")"
fi

# ---- tampering is repaired and reported (events over vsock, the journal) ----
timeout 15 stockadectl events --socket vsock:1:5100 --json >"$tmp/events" 2>&1 &
events_pid=$!
sleep 2
umount /etc/docker/daemon.json 2>"$tmp/err"
repaired=
for _ in $(seq 1 20); do
        sleep 0.5
        if ! (echo '{}' >>/etc/docker/daemon.json) 2>/dev/null && findmnt -n /etc/docker/daemon.json >/dev/null; then
                repaired=1
                break
        fi
done
if [[ -n $repaired ]]; then
        pass "an unmounted lock is mounted again read-only within 10 s"
else
        fail "an unmounted lock is mounted again read-only within 10 s" "umount: $(oneline "$tmp/err")"
fi
sleep 1
kill "$events_pid" 2>/dev/null
wait "$events_pid" 2>/dev/null
if grep -q 'lock.tampered' "$tmp/events"; then
        pass "events over vsock report lock.tampered"
else
        fail "events over vsock report lock.tampered" "$(head -c 300 "$tmp/events")"
fi

# ---- journald: the agent's structured fields ----
journalctl -o json -u stockaded.service --no-pager >"$tmp/journal" 2>/dev/null
events=$(grep -o '"STOCKADE_EVENT":"[a-z.]*"' "$tmp/journal" | sort -u | tr '\n' ' ')
if grep -q '"CODE_FILE":' "$tmp/journal"; then
        pass "journal: the agent's entries carry CODE_FILE=/CODE_LINE= (journalctl -o json)"
else
        fail "journal: the agent's entries carry CODE_FILE=/CODE_LINE=" \
                "$(journalctl -u stockaded.service -n 5 --no-pager -o cat 2>&1 | tr '\n' '|' | cut -c1-300)"
fi
if grep '"STOCKADE_EVENT":"lock.tampered"' "$tmp/journal" | grep -q '"STOCKADE_DATA":'; then
        pass "journal has STOCKADE_EVENT=lock.tampered and STOCKADE_DATA= ($events)"
else
        fail "journal has STOCKADE_EVENT=lock.tampered" "STOCKADE_EVENT values: '$events'"
fi

# ---- cgroup v2 ----
if [[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]]; then
        pass "the guest runs cgroup v2"
else
        fail "the guest runs cgroup v2" "$(stat -fc %T /sys/fs/cgroup)"
fi

# ---- a busybox image made from the guest's own files ----
mkdir -p "$tmp/rootfs/bin" "$tmp/rootfs/etc" "$tmp/rootfs/proc" "$tmp/rootfs/sys" "$tmp/rootfs/dev" "$tmp/rootfs/tmp"
cp /bin/busybox "$tmp/rootfs/bin/"
for t in sh cat sleep true id ls echo grep test; do ln -s busybox "$tmp/rootfs/bin/$t"; done
# run.sh puts tests/integration/seccomp-probe (static) beside this script.
cp "$(dirname "$0")/seccomp-probe" "$tmp/rootfs/bin/" 2>/dev/null
echo 'root:x:0:0:root:/:/bin/sh' >"$tmp/rootfs/etc/passwd"
if tar -C "$tmp/rootfs" -c . | timeout 120 docker import - "$img" >/dev/null 2>"$tmp/err"; then
        pass "docker import of a busybox image"
else
        fail "docker import of a busybox image" "$(oneline "$tmp/err")"
fi

uid_map() { drun "$@" "$img" cat /proc/self/uid_map 2>"$tmp/err" | tr -s ' ' | sed 's/^ //'; }
map=$(uid_map)
if [[ $map == "0 100000 65536" ]]; then
        pass "docker run: uid_map is 0 100000 65536"
else
        fail "docker run: uid_map is 0 100000 65536" "got '$map': $(oneline "$tmp/err")"
fi
map=$(uid_map --runtime=runc)
if [[ $map =~ ^0\ [0-9]+\ 65536$ && ${map#0 } != "0 65536" ]] && [[ $(cut -d' ' -f2 <<<"$map") -ge 100000 ]]; then
        pass "docker run --runtime=runc: uid_map is $map"
else
        fail "docker run --runtime=runc goes through Stockade" "got '$map': $(oneline "$tmp/err")"
fi
if drun --network=host "$img" true 2>"$tmp/err"; then
        fail "--network=host is refused" "the container ran"
elif grep -q "can't share the network namespace" "$tmp/err"; then
        pass "--network=host is refused: $(grep -o "stockade: [^\"]*namespace with the VM" "$tmp/err" | head -1)"
else
        fail "--network=host is refused with Stockade's reason" "$(oneline "$tmp/err")"
fi
if drun -v /etc:/x "$img" true 2>"$tmp/err"; then
        fail "-v /etc:/x is refused" "the container ran"
elif grep -q "restricted VM path" "$tmp/err"; then
        pass "-v /etc:/x is refused: restricted VM path"
else
        fail "-v /etc:/x is refused with Stockade's reason" "$(oneline "$tmp/err")"
fi
# The i386 ABI (int 0x80): the guest's kernel runs it, and a container's first such call
# kills it (the ABI is refused as a whole).
probe=$(dirname "$0")/seccomp-probe
if [[ $("$probe" i386-getpid 2>&1) != 'i386 getpid: succeeded' ]]; then
        fail "the guest's kernel runs int 0x80 outside containers" "$("$probe" i386-getpid 2>&1 | tr '\n' ' ')"
else
        out=$(drun "$img" sh -c 'seccomp-probe i386-vsock; seccomp-probe i386-umount /proc; test -e /proc/self/status && echo /proc still mounted' 2>&1)
        if [[ $out == $'i386-vsock: killed by Bad system call\ni386-umount: killed by Bad system call\n/proc still mounted' ]]; then
                pass "int 0x80 in a container: socketcall(AF_VSOCK) and umount of /proc kill the caller (SIGSYS); int 0x80 works outside"
        else
                fail "int 0x80 in a container: socketcall(AF_VSOCK) and umount of /proc kill the caller (SIGSYS)" "$(tr '\n' ' ' <<<"$out")"
        fi
fi

# A container that keeps running: its limits seen inside and on the VM's side, and the
# agent's restart below must leave it up.
running() { [[ $(timeout 20 docker inspect -f '{{.State.Running}}' keep 2>/dev/null) == true ]]; }
timeout 60 docker rm -f keep >/dev/null 2>&1
timeout 180 docker run -d --name keep --memory 64m --cpus 0.5 "$img" \
        sh -c 'cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max; exec sleep 100000' >/dev/null 2>"$tmp/err"
sleep 1
timeout 20 docker logs keep >"$tmp/cg" 2>>"$tmp/err"
pid=$(timeout 20 docker inspect -f '{{.State.Pid}}' keep 2>>"$tmp/err")
cgroup=/sys/fs/cgroup$(sed -n 's/^0:://p' "/proc/$pid/cgroup" 2>/dev/null)
mem=$(sed -n 1p "$tmp/cg") cpu=$(sed -n 2p "$tmp/cg")
vm_mem=$(cat "$cgroup/memory.max" 2>/dev/null) vm_cpu=$(cat "$cgroup/cpu.max" 2>/dev/null)
if [[ $mem == 67108864 && $vm_mem == 67108864 && $cgroup == */docker-*.scope ]]; then
        pass "--memory 64m: memory.max is 67108864 inside and in the VM's $cgroup"
else
        fail "--memory 64m: memory.max is 67108864 inside and on the VM" "inside '$mem', VM '$vm_mem' in '$cgroup': $(oneline "$tmp/err")"
fi
if [[ $cpu == "50000 100000" && $vm_cpu == "50000 100000" ]]; then
        pass "--cpus 0.5: cpu.max is 50000 100000 inside and on the VM"
else
        fail "--cpus 0.5: cpu.max is 50000 100000 inside and on the VM" "inside '$cpu', VM '$vm_cpu': $(oneline "$tmp/err")"
fi

# The /proc emulation: grep reads with read(2), busybox cat with sendfile(2), which goes
# through the page cache (Linux 6.5 and newer splice FUSE files that way).
read=$(drun --memory 64m "$img" grep MemTotal /proc/meminfo 2>"$tmp/err")
sent=$(drun --memory 64m "$img" sh -c 'cat /proc/meminfo | grep MemTotal' 2>>"$tmp/err")
if [[ $read =~ ^MemTotal:\ +65536\ kB$ && $sent == "$read" ]]; then
        pass "--memory 64m: /proc/meminfo says MemTotal 65536 kB, to read(2) and to sendfile(2) (busybox cat)"
else
        fail "--memory 64m: /proc/meminfo says MemTotal 65536 kB, to read(2) and to sendfile(2)" "read '$read', sendfile '$sent': $(oneline "$tmp/err")"
fi

# ---- Docker-in-Docker: an engine inside a --privileged container ----
# The image is the guest's own engine (dockerd, containerd, its shim, runc) with the
# libraries they load, and busybox. The inner engine mounts overlays, proc, sysfs, cgroup2
# and makes namespaces for its containers; all of it inside the outer container's user
# namespace, its mounts vetted by the agent. The guest's docker CLI speaks to the inner
# engine's socket through /proc/PID/root (a CLI in the image would only add 45 MB to copy
# and import under TCG).
dind_image() {
        local root=$tmp/dind b p
        mkdir -p "$root"/{bin,usr/bin,etc,proc,sys,dev,tmp,run,var/lib/docker}
        ln -s ../run "$root/var/run"
        cp /bin/busybox "$root/bin/"
        for b in sh cat sleep true ls echo grep sed mkdir wc mount tr; do ln -s busybox "$root/bin/$b"; done
        for b in dockerd containerd containerd-shim-runc-v2 runc; do
                p=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$b") || return 1
                cp "$p" "$root/usr/bin/" || return 1
                ldd "$p" | grep -o '/[^ ]*' | xargs -r cp --parents -L -t "$root" || return 1
        done
        echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
        echo 'root:x:0:' >"$root/etc/group"
        # cgroup v2 lets only a leaf hold processes: the engine's processes move to a child
        # before the controllers are handed down to the inner containers' cgroups.
        cat >"$root/bin/dind" <<'EOF'
#!/bin/sh
export PATH=/usr/bin:/bin
mkdir -p /sys/fs/cgroup/init
for p in $(cat /sys/fs/cgroup/cgroup.procs); do echo "$p" >/sys/fs/cgroup/init/cgroup.procs 2>/dev/null; done
sed -e 's/ / +/g' -e 's/^/+/' /sys/fs/cgroup/cgroup.controllers >/sys/fs/cgroup/cgroup.subtree_control
exec dockerd --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
        --userland-proxy=false --storage-driver=overlay2 --log-level=warn
EOF
        chmod 0755 "$root/bin/dind"
        tar -C "$root" -c . | timeout 180 docker import - vmtest/dind >/dev/null
}
dind_checks() {
        local driver inner outer outer_pid pid uid masked t=$SECONDS
        if ! dind_image 2>"$tmp/err"; then
                fail "Docker-in-Docker: an image of the guest's engine" "$(oneline "$tmp/err")"
                return
        fi
        echo "# Docker-in-Docker: the image in $((SECONDS - t)) s"
        t=$SECONDS
        if ! timeout 180 docker run -d --privileged --name dind -v /var/lib/docker vmtest/dind /bin/dind >/dev/null 2>"$tmp/err"; then
                fail "Docker-in-Docker: a --privileged container of the engine starts" "$(oneline "$tmp/err")"
                return
        fi
        outer_pid=$(timeout 20 docker inspect -f '{{.State.Pid}}' dind)
        inner_docker() { timeout 180 docker -H "unix:///proc/$outer_pid/root/run/docker.sock" "$@"; }
        for _ in $(seq 1 60); do
                inner_docker info >/dev/null 2>&1 && break
                [[ $(timeout 20 docker inspect -f '{{.State.Running}}' dind 2>&1) == true ]] || break
                sleep 2
        done
        driver=$(inner_docker info -f '{{.Driver}}' 2>"$tmp/err")
        if [[ $driver != overlay2 ]]; then
                fail "Docker-in-Docker: the inner engine runs on overlay2" "driver '$driver': $(oneline "$tmp/err")"
                timeout 20 docker logs dind 2>&1 | tail -n 20 | sed 's/^/# dind: /'
                return
        fi
        pass "Docker-in-Docker: the inner engine runs, storage driver overlay2"
        echo "# Docker-in-Docker: the inner engine up $((SECONDS - t)) s after docker run"
        t=$SECONDS
        if ! tar -C "$tmp/rootfs" -c . | inner_docker import - inner >/dev/null 2>"$tmp/err"; then
                fail "Docker-in-Docker: docker import in the inner engine" "exit status ${PIPESTATUS[1]}: $(oneline "$tmp/err")"
                timeout 20 docker logs dind 2>&1 | tail -n 10 | sed 's/^/# dind: /'
                return
        fi
        echo "# Docker-in-Docker: docker import in the inner engine in $((SECONDS - t)) s"
        # The outer container's range: another container of the checks may hold the first.
        outer=$(tr -s ' ' <"/proc/$outer_pid/uid_map" | sed 's/^ //')
        base=${outer#0 } base=${base%% *}
        # A container of the inner engine that keeps running: its uid_map inside, and its
        # process seen from the VM.
        inner_docker run -d --name sleeper --network=none inner sh -c 'cat /proc/self/uid_map; exec sleep 7777' >/dev/null 2>"$tmp/err"
        for _ in $(seq 1 20); do
                pid=$(pgrep -x -f 'sleep 7777' | head -n 1)
                [[ -n $pid ]] && break
                sleep 1
        done
        inner=$(inner_docker logs sleeper 2>>"$tmp/err" | tr -s ' ' | sed 's/^ //')
        if [[ -z $base || $inner != "$outer" ]]; then
                fail "Docker-in-Docker: a container of the inner engine runs in the outer's range" "got '$inner', outer '$outer': $(oneline "$tmp/err")"
                journalctl -u stockaded.service --no-pager -o cat 2>&1 | grep -i 'denied\|refused\|cannot\|watchdog' | tail -n 10 | sed 's/^/# agent: /'
                echo "# agent: restarted $(systemctl show -P NRestarts stockaded.service) times by systemd"
                return
        fi
        pass "Docker-in-Docker: a container of the inner engine runs, uid_map '$inner' (the outer's range)"
        # Seen from the VM: the inner container's process is the outer's first uid in the
        # outer's user namespace, holding no capability over the VM.
        uid=$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)
        if [[ -n $pid && $uid == "$base" && $(readlink "/proc/$pid/ns/user") == "$(readlink "/proc/$outer_pid/ns/user")" &&
                $(readlink "/proc/$pid/ns/user") != "$(readlink /proc/1/ns/user)" ]]; then
                pass "Docker-in-Docker: the inner container is uid $uid on the VM, in the outer container's user namespace"
        else
                fail "Docker-in-Docker: the inner container is unprivileged on the VM" \
                        "pid '$pid', uid '$uid', user ns $(readlink "/proc/$pid/ns/user" 2>&1), outer's $(readlink "/proc/$outer_pid/ns/user"): $(oneline "$tmp/err")"
        fi
        # The inner engine unmasks /proc and /sys for --privileged; Stockade's masks stay on
        # every proc and sysfs mounted in the outer container.
        masked=$(inner_docker run --rm --privileged --network=none inner sh -c 'wc -c </proc/kcore; ls -a /sys/firmware | wc -l' 2>"$tmp/err" | tr '\n' ' ')
        if [[ $masked == "0 2 " ]]; then
                pass "Docker-in-Docker: a --privileged inner container still has /proc/kcore and /sys/firmware masked"
        else
                fail "Docker-in-Docker: a --privileged inner container still has /proc/kcore and /sys/firmware masked" \
                        "bytes in /proc/kcore, entries in /sys/firmware: '$masked': $(oneline "$tmp/err")"
        fi
}
timeout 60 docker rm -fv dind >/dev/null 2>&1
t_dind=$SECONDS
dind_checks
timeout 60 docker rm -fv dind >/dev/null 2>&1
echo "# Docker-in-Docker checks took $((SECONDS - t_dind)) s"

# ---- the agent restarts; dockerd and a running container stay up ----
if running; then
        dockerd_pid=$(systemctl show -P MainPID docker.service)
        agent_pid=$(systemctl show -P MainPID stockaded.service)
        timeout 60 systemctl restart stockaded.service
        sleep 2
        now_dockerd=$(systemctl show -P MainPID docker.service)
        now_agent=$(systemctl show -P MainPID stockaded.service)
        if [[ $now_dockerd == "$dockerd_pid" && $now_agent != "$agent_pid" ]] && running; then
                pass "systemctl restart stockaded: the agent restarted (pid $agent_pid -> $now_agent), dockerd (pid $dockerd_pid) and the container kept running"
        else
                fail "systemctl restart stockaded keeps dockerd and a running container up" \
                        "dockerd pid $dockerd_pid -> $now_dockerd, agent $agent_pid -> $now_agent, container running: $(docker inspect -f '{{.State.Status}}' keep 2>&1)"
        fi
else
        fail "systemctl restart stockaded keeps dockerd and a running container up" "cannot start a container: $(oneline "$tmp/err")"
fi
timeout 60 systemctl start docker.service >/dev/null 2>&1
docker rm -f keep >/dev/null 2>&1

# ---- kill -9 of the agent: the notify fds wait in systemd's fd store for the next one ----
check_kill_restart() {
        local name="kill -9 of the agent: a running container's vetted calls go on under the restarted agent"
        docker rm -f loop >/dev/null 2>&1
        if ! timeout 180 docker run -d --cap-add SYS_ADMIN --name loop "$img" sh -c \
                'mkdir -p /mnt/t; while true; do mount -t tmpfs none /mnt/t && umount /mnt/t && echo ok || echo FAILED; sleep 0.2; done' \
                >/dev/null 2>"$tmp/err"; then
                fail "$name" "cannot start a container: $(oneline "$tmp/err")"
                return
        fi
        sleep 3
        local kept agent_pid new_pid before after
        kept=$(systemctl show -P NFileDescriptorStore stockaded.service)
        agent_pid=$(systemctl show -P MainPID stockaded.service)
        kill -9 "$agent_pid"
        new_pid=$agent_pid
        for _ in $(seq 1 40); do
                sleep 0.5
                new_pid=$(systemctl show -P MainPID stockaded.service)
                [[ $new_pid != "$agent_pid" && $new_pid != 0 && $(systemctl show -P ActiveState stockaded.service) == active ]] && break
        done
        before=$(docker logs loop 2>&1 | grep -c '^ok')
        sleep 3
        after=$(docker logs loop 2>&1 | grep -c '^ok')
        if [[ ${kept:-0} -ge 1 && $new_pid != "$agent_pid" && $after -gt $before ]] && ! docker logs loop 2>&1 | grep -q FAILED; then
                pass "$name (pid $agent_pid -> $new_pid, $kept fds in systemd's fd store, $((after - before)) mount+umount pairs since)"
        else
                fail "$name" "fds kept $kept, agent $agent_pid -> $new_pid, pairs $before -> $after, $(docker logs loop 2>&1 | grep -m1 FAILED)"
        fi
        docker rm -f loop >/dev/null 2>&1
}
check_kill_restart

# ---- the agent stopped: new containers fail closed; start brings it back ----
timeout 60 systemctl stop stockaded.socket stockaded.service
if [[ $(systemctl show -P ActiveState docker.service) == active ]]; then
        pass "systemctl stop stockaded: dockerd stays up"
else
        fail "systemctl stop stockaded: dockerd stays up" "docker.service is $(systemctl show -P ActiveState docker.service)"
        timeout 60 systemctl start docker.service >/dev/null 2>&1
        timeout 60 systemctl stop stockaded.socket stockaded.service
fi
if drun "$img" true 2>"$tmp/err"; then
        fail "with the agent stopped, docker run fails closed" "the container ran"
elif grep -q "not reachable" "$tmp/err"; then
        pass "with the agent stopped, docker run fails closed: $(grep -o "stockade: the Stockade agent is not reachable[^\"]*isolation" "$tmp/err" | head -1)"
else
        fail "with the agent stopped, docker run fails closed naming the agent" "$(oneline "$tmp/err")"
fi
timeout 60 systemctl start stockaded.socket stockaded.service
map=$(uid_map)
if [[ $map == "0 100000 65536" ]]; then
        pass "systemctl start stockaded: docker run works again (0 100000 65536)"
else
        fail "systemctl start stockaded: docker run works again" "got '$map': $(oneline "$tmp/err")"
fi

# ---- the watchdog restarts a hung agent ----
agent_pid=$(systemctl show -P MainPID stockaded.service)
kill -STOP "$agent_pid"
new_pid=$agent_pid
for _ in $(seq 1 45); do
        sleep 1
        new_pid=$(systemctl show -P MainPID stockaded.service)
        [[ $new_pid != "$agent_pid" && $new_pid != 0 && $(systemctl show -P ActiveState stockaded.service) == active ]] && break
done
if [[ $new_pid != "$agent_pid" && $new_pid != 0 ]]; then
        pass "the watchdog restarts a stopped agent (pid $agent_pid -> $new_pid, WatchdogSec=$(systemctl show -P WatchdogUSec stockaded.service))"
else
        fail "the watchdog restarts a stopped agent within 45 s" "still pid $agent_pid, $(systemctl show -P ActiveState stockaded.service)"
        kill -CONT "$agent_pid" 2>/dev/null
fi

# ---- into a reboot: a container left running (on the disk booted twice) ----
docker rm -f survivor >/dev/null 2>&1
mkdir -p "$state"
if timeout 180 docker run -d --name survivor "$img" sleep 100000 >/dev/null 2>"$tmp/err"; then
        pid=$(docker inspect -f '{{.State.Pid}}' survivor)
        tr -s ' ' <"/proc/$pid/uid_map" | sed 's/^ //' >"$state/survivor-map"
fi
touch "$state/first-boot"
sync
rm -rf "$tmp"
poweroff_soon
