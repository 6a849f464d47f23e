#!/usr/bin/env bash
# Attacks on the seccomp broker from inside containers of a real Docker engine; each must
# fail the way the kernel would make it fail without the broker in between:
#  - a user without capabilities (uid 1000 in --privileged and --cap-add SYS_ADMIN
#    containers) gets the kernel's errno for a tmpfs mount, a bind over /etc/passwd, a
#    mknod in a root-only directory and an unmount of an initial mount;
#  - an overlay whose layers are /sys (or anything under a masked path) is refused;
#  - a bind or overlay of "/proc/self/../../tmp" shows nothing of the VM's /tmp;
#  - pivot_root into a mask (which would uncover what it hides) is refused, runc's own
#    pivot_root(".", ".") and unmount of the old root from "." work;
#  - a user without capabilities gets EPERM for a tmpfs mount also while a root process of
#    the same container holds a kept helper (one that performed its two mounts), and a
#    process that unshared its mount namespace after its two mounts mounts in the new one;
#  - a container that SIGSTOPs the broker's helper still gets its call answered, and
#    no stopped helper is left behind.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
docker_agent_config
docker_setup || exit 1
img=stockade-test
mkdir -p probe
gcc -static -O2 -o probe/broker-probe "$STOCKADE_TOP/tests/adversarial/broker-probe.c" || { fail "build broker-probe"; exit 1; }

# The calls a user without capabilities makes, as uid 1000 through docker exec.
for caps in --privileged "--cap-add SYS_ADMIN"; do
        p="uid 1000 in $caps"
        docker run -d --name adv $caps -v "$SCRATCH/probe:/probe:ro" $img sleep 300 >/dev/null 2>&1
        docker exec adv sh -c 'mkdir -p /mnt/t /rootonly && chmod 755 /rootonly && echo evil >/tmp/passwd' 2>&1
        as_user() { docker exec --user 1000:1000 adv /probe/broker-probe "$@"; }
        expect "$p: a tmpfs mount gets EPERM" 0 '^/mnt/t: Operation not permitted$' as_user mount none /mnt/t tmpfs
        expect "$p: a bind over /etc/passwd gets EPERM" 0 '^/etc/passwd: Operation not permitted$' \
                as_user bind /tmp/passwd /etc/passwd
        expect "$p: mknod in a root-only directory gets EACCES" 0 '^/rootonly/null: Permission denied$' \
                as_user mknod /rootonly/null
        expect "$p: unmounting an initial mount (/etc/hosts) gets EPERM" 0 '^/etc/hosts: Operation not permitted$' \
                as_user umount /etc/hosts
        expect "$p: nothing of that happened" 0 '^clean$' docker exec adv sh -c \
                '! grep -q evil /etc/passwd && ! test -e /rootonly/null && grep -q " /etc/hosts " /proc/self/mountinfo && ! grep -q " /mnt/t " /proc/self/mountinfo && echo clean'
        docker rm -f adv >/dev/null 2>&1
done

# A kept helper performs the calls of its first caller's kind only: same namespaces, root
# and credentials. A root process that mounted twice (and so has one) stays while a process
# of uid 1000 in the same container mounts: it must get the kernel's EPERM, not root's rights.
docker run -d --name adv --cap-add SYS_ADMIN -v "$SCRATCH/probe:/probe:ro" $img sleep 300 >/dev/null 2>&1
expect "uid 1000 beside root's kept helper: a tmpfs mount gets EPERM" 0 '^/mnt/u: Operation not permitted$' \
        docker exec adv sh -c 'mkdir -p /mnt/r /mnt/u; /probe/broker-probe hold 3 mount none /mnt/r tmpfs >/tmp/r &
                sleep 0.5; /probe/broker-probe as 1000 mount none /mnt/u tmpfs; wait'
expect "uid 1000 beside root's kept helper: root's own mounts succeeded, no tmpfs on /mnt/u" 0 '^/mnt/r: succeeded#/mnt/r: succeeded# clean$' \
        docker exec adv sh -c 'echo "$(tr "\n" "#" </tmp/r) $(grep -q " /mnt/u " /proc/self/mountinfo || echo clean)"'
docker rm -f adv >/dev/null 2>&1

# A caller that leaves for a mount namespace of its own after its kept helper started is no
# longer of that helper's kind (its mount namespace and its root mount differ): its next
# mount is made in its new namespace, not the old one. With neither in the key, the third
# mount landed in the old namespace (old namespace: 3).
expect "a mount after unshare(CLONE_NEWNS) lands in the new namespace only" 0 \
        '^/mnt/n: succeeded#/mnt/n: succeeded#/mnt/n: succeeded#mounts on /mnt/n here: 3# old namespace: 2$' \
        docker_run --cap-add SYS_ADMIN -v "$SCRATCH/probe:/probe:ro" $img sh -c \
        'mkdir -p /mnt/n; echo "$(/probe/broker-probe unshare mount none /mnt/n tmpfs | tr "\n" "#") old namespace: $(grep -c " /mnt/n " /proc/self/mountinfo)"'

# Overlay layers are opened by the kernel from the layer's own mount: masks on top of it
# (/sys/firmware) do not show through. Layers on a tmpfs: overlay refuses an upper on overlay.
overlay() { # DATA
        docker_run --privileged -v "$SCRATCH/probe:/probe:ro" $img sh -c \
                'mkdir -p /ov /mnt/o && mount -t tmpfs none /ov && mkdir /ov/l /ov/u /ov/w && /probe/broker-probe mount overlay /mnt/o overlay "$0" && ls /mnt/o/firmware 2>&1 | head -3' "$1"
}
expect "an overlay with /sys as a lower layer is refused" 0 '^/mnt/o: Operation not permitted$' \
        overlay lowerdir=/sys:/ov/l,upperdir=/ov/u,workdir=/ov/w
expect "the same with lowerdir+" 0 '^/mnt/o: Operation not permitted$' \
        overlay lowerdir+=/ov/l,lowerdir+=/sys,upperdir=/ov/u,workdir=/ov/w
expect "an overlay with a lower layer above a masked path is refused" 0 '^/mnt/o: Operation not permitted$' \
        overlay lowerdir=/proc:/ov/l,upperdir=/ov/u,workdir=/ov/w
expect "an ordinary overlay still works" 0 '^/mnt/o: succeeded$' \
        overlay lowerdir=/ov/l,upperdir=/ov/u,workdir=/ov/w

# "/proc/self/.." is the container's /proc to the caller; from the agent's /proc, where the
# helper opens the caller's own /proc/self entries, it climbs to the VM's root.
echo stockade-vm-file >"/tmp/vm-file-$$"
on_exit "rm -f /tmp/vm-file-$$"
expect "a bind of /proc/self/../../tmp shows nothing of the VM's /tmp" 0 '^shown: 0$' \
        docker_run --privileged -v "$SCRATCH/probe:/probe:ro" $img sh -c \
        'mkdir -p /mnt/b && /probe/broker-probe bind /proc/self/../../tmp /mnt/b >/dev/null; echo "shown: $(ls /mnt/b | grep -c vm-file)"'
expect "an overlay on /proc/self/../../tmp shows nothing of the VM's /tmp" 0 '^shown: 0$' \
        docker_run --privileged -v "$SCRATCH/probe:/probe:ro" $img sh -c \
        'mkdir -p /mnt/o && /probe/broker-probe mount overlay /mnt/o overlay lowerdir=/proc/self/../../tmp:/etc >/dev/null; echo "shown: $(ls /mnt/o | grep -c vm-file)"'

# pivot_root moves the new root's mount away from where it was mounted: made the root, the
# /sys/firmware mask would leave the VM's /sys/firmware uncovered in the old root, which is
# then on top of the new one ("..").
expect "pivot_root into the /sys/firmware mask is refused" 0 '^/sys/firmware: Operation not permitted$' \
        docker_run --privileged -v "$SCRATCH/probe:/probe:ro" $img /probe/broker-probe pivot /sys/firmware ../sys/firmware
# What a runc inside the container does: pivot_root onto its container's root, then unmount
# the old root from "." ("..", where the kernel follows mounts, shows what is on top).
expect "pivot_root onto a tmpfs of its own, the old root unmounted from \".\"" 0 '^old root on top: 1; after: busybox$' \
        docker_run --privileged $img sh -c 'mkdir /nr && mount -t tmpfs none /nr && cp /bin/busybox /nr/ && cd /nr &&
                busybox pivot_root . . && top=$(/busybox ls .. | /busybox grep -cx bin) &&
                /busybox umount -l . && echo "old root on top: $top; after: $(/busybox ls ..)"'

# A container root could see, and stop, a helper that forked into its pid namespace (for
# a new proc). Whatever it stops, the agent's own deadline answers the call and the helper
# goes.
docker run -d --name stopper --privileged -v "$SCRATCH/probe:/probe:ro" $img sleep 300 >/dev/null 2>&1
docker exec stopper mkdir -p /mnt/p
out=
for _ in $(seq 10); do
        out=$(timeout 40 docker exec stopper /probe/broker-probe stop-helper /mnt/p 2>&1)
        [[ $out == "stopped 0;"* ]] || break
done
# Stopped helpers of this agent: its children, or in the container's pid namespace.
ns=$(readlink /proc/"$(docker inspect -f '{{.State.Pid}}' stopper)"/ns/pid)
stuck=0
for pid in $(ps -eo pid=,stat=,comm= | awk '($3 == "stockaded" || $3 == "stockade-helper") && $2 ~ /^T/ {print $1}'); do
        parent=$(ps -o ppid= -p "$pid")
        [[ $parent -eq $AGENT_PID || $(ps -o ppid= -p "$parent") -eq $AGENT_PID ||
           $(readlink /proc/$pid/ns/pid) == "$ns" ]] && stuck=$((stuck + 1))
done
if [[ $out =~ ^stopped\ ([0-9]+)\;\ mount\ (.*)\ after\ ([0-9]+)\ s$ ]] && (( BASH_REMATCH[3] <= 10 )) && (( stuck == 0 )); then
        if (( BASH_REMATCH[1] == 0 )); then
                pass "the container never sees a helper to stop (10 tries), its calls are answered: $out"
        else
                pass "a stopped helper does not hold the call: $out"
        fi
else
        fail "a stopped helper does not hold the call" "${out:-no answer within 40 s}; $stuck stopped helpers left"
fi
docker rm -f stopper >/dev/null 2>&1

# Whatever stops a helper (here the VM, which can see it), the agent keeps its deadline:
# the helper is killed, its call gets EINTR and the container's next calls go through.
docker run -d --name slowed --cap-add SYS_ADMIN $img sh -c \
        'mkdir -p /mnt/t; while true; do mount -t tmpfs none /mnt/t 2>&1 && umount /mnt/t && echo mounted; done' >/dev/null 2>&1
probe/broker-probe stop-children "$AGENT_PID" &
stopper=$!
on_exit "kill $stopper 2>/dev/null"
cut_off=
for _ in $(seq 200); do
        docker logs slowed 2>&1 | grep -q 'Interrupted system call' && { cut_off=yes; break; }
        sleep 0.1
done
kill $stopper 2>/dev/null
wait $stopper 2>/dev/null
sleep 6 # a helper stopped last meets its deadline (5 s) too
# The agent's helper parent and its helpers.
helpers=$(ps -o pid= --ppid "$AGENT_PID" | xargs)
stopped=$( (ps -o stat= --ppid "$AGENT_PID"; [[ -n $helpers ]] && ps -o stat= --ppid "${helpers// /,}") | grep -c '^T')
lines=$(docker logs slowed 2>&1 | wc -l)
sleep 1
after=$(docker logs slowed 2>&1 | tail -n +$((lines + 1)) | grep -c '^mounted$')
if [[ -n $cut_off ]] && (( after > 0 && stopped == 0 )); then
        pass "a stopped helper is killed at its deadline, its call gets EINTR, later calls go through"
else
        fail "a stopped helper is killed at its deadline" "cut off: ${cut_off:-no}; $after mounts after; $stopped stopped helpers"
fi
docker rm -f slowed >/dev/null 2>&1
