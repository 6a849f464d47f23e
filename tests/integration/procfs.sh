#!/usr/bin/env bash
# The agent's /proc and /sys emulation under a real Docker engine: a container sees its
# own memory limit, CPUs, uptime and load, tools that size themselves from /proc agree, a
# process outside any container sees the VM's files, and a restarted agent serves the
# mounts of running containers again.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
cd "$SCRATCH"
docker_require
[[ -c /dev/fuse ]] || { echo "SKIP: no /dev/fuse"; exit 0; }

docker_agent_config
docker_setup || exit 1
img=stockade-test
run() { timeout -s KILL 60 docker run --rm "$@" 2>&1 | grep -v '^WARNING: IPv4 forwarding'; return "${PIPESTATUS[0]}"; }
limited=(-m 256m --cpus 1.5 --cpuset-cpus 0)

expect "MemTotal is the memory limit" 0 '^MemTotal: +262144 kB$' run "${limited[@]}" $img grep MemTotal /proc/meminfo
# busybox cat reads with sendfile(2), through the page cache.
expect "busybox cat (sendfile) of /proc/meminfo shows the memory limit" 0 '^MemTotal: +262144 kB$' \
        run "${limited[@]}" $img sh -c 'cat /proc/meminfo | grep MemTotal'
# procps free (busybox's asks sysinfo(2)), with its libraries from the VM.
mkdir -p procps
for f in $(command -v free) $(ldd "$(command -v free)" | grep -o '/[^ ]*'); do cp -L "$f" procps/; done
expect "free -m shows 256 total" 0 '^Mem: +256 ' run "${limited[@]}" -v "$SCRATCH/procps:/procps:ro" $img \
        /procps/ld-linux-x86-64.so.2 --library-path /procps /procps/free -m
expect "nproc says 1 with --cpuset-cpus 0" 0 '^1$' run "${limited[@]}" $img nproc
expect "cpuinfo has one processor with --cpuset-cpus 0" 0 '^1$' run "${limited[@]}" $img grep -c ^processor /proc/cpuinfo
expect "cpu/online says 0" 0 '^0$' run "${limited[@]}" $img head -1 /sys/devices/system/cpu/online
if (( $(nproc) >= 2 )); then
        expect "cpu1's directory in /sys is empty with --cpuset-cpus 0, cpu0's is not" 0 '^cpu0:[1-9][0-9]* cpu1:0$' \
                run "${limited[@]}" $img sh -c 'echo "cpu0:$(ls /sys/devices/system/cpu/cpu0 | wc -l) cpu1:$(ls /sys/devices/system/cpu/cpu1 | wc -l)"'
        expect "the same in a sysfs the container mounts" 0 '^cpu0:[1-9][0-9]* cpu1:0$' \
                run --privileged "${limited[@]}" $img sh -c 'mkdir -p /mnt/s && mount -t sysfs sysfs /mnt/s &&
                        echo "cpu0:$(ls /mnt/s/devices/system/cpu/cpu0 | wc -l) cpu1:$(ls /mnt/s/devices/system/cpu/cpu1 | wc -l)"'
else
        echo "SKIP: cpuN directories outside the cpuset: one CPU here"
fi
expect "stat has one cpu line per CPU" 0 '^cpu0 .*#1$' run "${limited[@]}" $img sh -c 'grep ^cpu0 /proc/stat | tr "\n" "#"; grep -c "^cpu[0-9]" /proc/stat | sed "s/^/#/"'
# The proc and sysfs a container mounts itself get the same files: a pid namespace of its
# own (as Docker-in-Docker's containers have), a second proc, a sysfs.
expect "a proc mounted for a nested pid namespace shows the container's memory and CPUs" 0 '^MemTotal: +262144 kB#1#$' \
        run --privileged "${limited[@]}" $img unshare -p -f --mount-proc sh -c 'grep MemTotal /proc/meminfo | tr "\n" "#"; grep -c ^processor /proc/cpuinfo | tr "\n" "#"'
expect "a second proc and a sysfs mounted in the container show its own files" 0 '^MemTotal: +262144 kB#0$' \
        run --privileged "${limited[@]}" $img sh -c 'mkdir -p /mnt/p /mnt/s && mount -t proc proc /mnt/p && mount -t sysfs sysfs /mnt/s &&
                grep MemTotal /mnt/p/meminfo | tr "\n" "#" && head -1 /mnt/s/devices/system/cpu/online'
# Attacks on those files: unmounting one (a proc the container mounted itself holds no
# initial mounts) or copying a proc without the mounts on it would show the VM's figures.
expect "a container cannot unmount an emulated file of a proc it mounted" 0 '^MemTotal: +262144 kB$' \
        run --privileged "${limited[@]}" $img sh -c 'mkdir -p /mnt/p && mount -t proc proc /mnt/p &&
                { umount /mnt/p/meminfo; umount -l /mnt/p/meminfo; } 2>/dev/null; grep MemTotal /mnt/p/meminfo'
expect "a container cannot unmount an emulated file of its own /proc" 0 '^MemTotal: +262144 kB$' \
        run --privileged "${limited[@]}" $img sh -c '{ umount /proc/meminfo; umount -l /proc/meminfo; } 2>/dev/null; grep MemTotal /proc/meminfo'
expect "a bind of /proc without MS_REC is refused (it would drop the emulated files)" 0 '^refused$' \
        run --privileged "${limited[@]}" $img sh -c 'mkdir -p /mnt/q && if mount --bind /proc /mnt/q 2>/dev/null; then
                grep MemTotal /mnt/q/meminfo; else echo refused; fi'
expect "--cpus 1.5 without a cpuset shows 2 processors" 0 '^2$' run --cpus 1.5 $img grep -c ^processor /proc/cpuinfo
expect "--cpus 0.5 shows 1 processor" 0 '^1$' run --cpus 0.5 $img grep -c ^processor /proc/cpuinfo
expect "top -bn1 shows the container's memory" 0 '^Mem: [0-9]+K used, [0-9]+K free' run "${limited[@]}" $img sh -c 'top -bn1 | head -3'
expect "swaps has its header" 0 '^Filename' run "${limited[@]}" $img head -5 /proc/swaps
expect "loadavg counts the container's tasks" 0 '^[0-9.]+ [0-9.]+ [0-9.]+ [0-9]+/[0-9]+ ' run $img head -1 /proc/loadavg
expect "reads at any offset: dd bs=1 skip=3 count=6" 0 '^Total:$' run "${limited[@]}" $img sh -c 'dd if=/proc/meminfo bs=1 skip=3 count=6 2>/dev/null; echo'
expect "head -c 8 of meminfo" 0 '^MemTotal$' run "${limited[@]}" $img sh -c 'head -c 8 /proc/meminfo; echo'
expect "the files cannot be written" 1 'Read-only|Permission denied' run --privileged $img sh -c 'echo x >/proc/meminfo'

# uptime_pair WHAT PAUSE CONDITION: /proc/uptime read twice in a container, PAUSE seconds
# apart; CONDITION (awk, of the first a and the second b) must hold.
uptime_pair() {
        local out first second
        out=$(run $img sh -c "cut -d' ' -f1 /proc/uptime; sleep $2; cut -d' ' -f1 /proc/uptime")
        first=$(head -1 <<<"$out") second=$(tail -1 <<<"$out")
        if [[ $first =~ ^[0-9.]+$ ]] && awk -v a="$first" -v b="$second" "BEGIN { exit !($3) }"; then
                pass "$1 ($first, $second)"
        else
                fail "$1" "$out"
        fi
}
uptime_pair "uptime starts near 0 and grows" 1.2 'a < 5 && b >= a + 1'
# Reads come from the page cache of the container's own directory in the emulation: a
# value is at most 0.1 s old, and containers reading at once each get their own figures.
uptime_pair "uptime read 0.3 s apart differs by at least 0.19 s" 0.3 'b >= a + 0.19'
for m in 128 256; do
        timeout -s KILL 60 docker run -d --name "reader$m" -m ${m}m $img sh -c \
                "while [ ! -e /tmp/go ]; do sleep 0.05; done; procfs-read /proc 500 'MemTotal: $((m * 1024)) kB' >/tmp/out 2>&1; touch /tmp/done; sleep 600" >/dev/null
done
on_exit "docker rm -f reader128 reader256 >/dev/null 2>&1"
timeout -s KILL 20 docker exec reader128 touch /tmp/go & go=$!
timeout -s KILL 20 docker exec reader256 touch /tmp/go
wait "$go"
for m in 128 256; do
        for _ in $(seq 100); do timeout -s KILL 20 docker exec "reader$m" test -e /tmp/done && break; sleep 0.2; done
        expect "-m ${m}m, reading while a container with another limit reads: every meminfo says $((m * 1024)) kB" 0 '^wrong 0$' \
                timeout -s KILL 20 docker exec "reader$m" grep ^wrong /tmp/out
done

# A container in another's pid namespace has its own cgroup, and its own figures.
timeout -s KILL 60 docker run -d --name pidhost -m 256m $img sleep 600 >/dev/null
on_exit "docker rm -f pidhost >/dev/null 2>&1"
expect "a container joining another's pid namespace (-m 128m, the other 256m) sees its own MemTotal" 0 '^MemTotal: +131072 kB$' \
        run --pid container:pidhost -m 128m $img grep MemTotal /proc/meminfo

# An attack on the agent's time: each statx() with AT_STATX_FORCE_SYNC asks the agent for
# the attributes, but a file is rendered at most every 0.05 s (a rendering costs about
# 100 us here).
renderings() { "$STOCKADE_BIN/stockadectl" --socket "unix:$SCRATCH/control.sock" status --json | grep -o '"renderings":[[:space:]]*[0-9]*' | grep -o '[0-9]*$'; }
r0=$(renderings) start=$(date +%s.%N)
expect "a container makes 5000 forced statx() of /proc/meminfo" 0 '^$' run $img procfs-read --force-sync /proc/meminfo 5000
r1=$(renderings) end=$(date +%s.%N)
# At most 20 a second of meminfo, and the runtime's look at each of the 8 files.
[[ -n $r0 && -n $r1 ]] && awk -v n=$((r1 - r0)) -v a="$start" -v b="$end" 'BEGIN { exit !(n <= 20 * (b - a) + 8) }' &&
        pass "they made at most 20 renderings a second ($((r1 - r0)) in $(awk -v a="$start" -v b="$end" 'BEGIN {printf "%.1f", b - a}') s)" ||
        fail "they made at most 20 renderings a second" "$((r1 - r0)) in $(awk -v a="$start" -v b="$end" 'BEGIN {print b - a}') s"

# A process outside any container gets the VM's file.
vm=$(grep ^MemTotal /proc/meminfo)
if [[ "$(grep ^MemTotal "$SCRATCH/run/procfs/meminfo")" == "$vm" ]]; then
        pass "a VM process reads the VM's meminfo through the mount"
else
        fail "a VM process reads the VM's meminfo through the mount" "$(grep ^MemTotal "$SCRATCH/run/procfs/meminfo" 2>&1)"
fi

# The root lists the VM's files only; a container's directory is found by its name alone.
expect "the mount's root lists the VM's files, no directory" 0 '^cpu-online cpuinfo diskstats loadavg meminfo stat swaps uptime $' \
        sh -c "ls '$SCRATCH/run/procfs' | sort | tr '\n' ' '"
expect "a name that is not 14 hex digits is no directory" 2 'No such file' ls "$SCRATCH/run/procfs/0000000000000g"
expect "the directory of a container the agent does not serve shows the VM's meminfo" 0 "^$vm\$" \
        grep ^MemTotal "$SCRATCH/run/procfs/00000000000001/meminfo"

# Network sysctls belong to the container's own network namespace: --sysctl sets them, and
# a --privileged container may (only /proc/sys/net is writable there).
vm_forward=$(cat /proc/sys/net/ipv4/ip_forward) vm_ttl=$(cat /proc/sys/net/ipv4/ip_default_ttl)
expect "--sysctl net.ipv4.ip_forward=1 is set in the container" 0 '^1$' run --sysctl net.ipv4.ip_forward=1 $img cat /proc/sys/net/ipv4/ip_forward
expect "sysctl -w of a network sysctl works in a --privileged container" 0 '^net.ipv4.ip_forward = 1#net.ipv4.ip_default_ttl = 99#99$' \
        run --privileged $img sh -c 'sysctl -w net.ipv4.ip_forward=1 net.ipv4.ip_default_ttl=99 | tr "\n" "#"; cat /proc/sys/net/ipv4/ip_default_ttl'
[[ $(cat /proc/sys/net/ipv4/ip_forward) == "$vm_forward" && $(cat /proc/sys/net/ipv4/ip_default_ttl) == "$vm_ttl" ]] &&
        pass "the VM's ip_forward and ip_default_ttl are unchanged ($vm_forward, $vm_ttl)" ||
        fail "the VM's ip_forward and ip_default_ttl are unchanged" "now $(cat /proc/sys/net/ipv4/ip_forward), $(cat /proc/sys/net/ipv4/ip_default_ttl); were $vm_forward, $vm_ttl"
expect "the rest of /proc/sys stays read-only in a --privileged container" 1 'Read-only file system' \
        run --privileged $img sh -c 'echo evil >/proc/sys/kernel/hostname'
expect "sysctl -w of a network sysctl is refused without --privileged" 1 'Read-only file system' \
        run $img sysctl -w net.ipv4.ip_default_ttl=99
