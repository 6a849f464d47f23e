#!/usr/bin/env bash
# containerd (Debian's 1.6) with Stockade: ctr run --runc-binary, and plain ctr run with
# Stockade's "runc" first on containerd's PATH (systemd/containerd.service.d's way), --rm and
# --uidmap (a snapshot containerd already shifted to the mapping: a pre-mapped engine, whose
# mapping is kept and recorded as that container's exclusive range).
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
. "$(dirname "$0")/engine-lib.sh"
engine_require containerd ctr
engine_agent_setup
containerd_setup

expect "ctr run --rm --runc-binary: own user namespace, writes its root" 0 '^ +0 +100000 +65536 uid=0\(root\) .* wrote$' \
        joined ctr run --rm --runc-binary "$SCRATCH/stockade-runc" localhost/busybox:latest c1 sh -c 'cat /proc/self/uid_map; id; touch /x && echo wrote'
expect "ctr run --rm with Stockade first on containerd's PATH" 0 '^ +0 +100000 +65536$' \
        ctr run --rm localhost/busybox:latest c2 cat /proc/self/uid_map
expect "ctr run --rm gives the ranges back" 0 '^$' ranges

expect "ctr run --uidmap keeps containerd's mapping, the snapshot is root's, writable" 0 '^ +0 +200000 +65536 0 0 wrote$' \
        joined ctr run --rm --uidmap 0:200000:65536 --gidmap 0:200000:65536 localhost/busybox:latest c3 \
        sh -c 'cat /proc/self/uid_map; stat -c "%u %g" /bin/busybox; mkdir /run/x && echo wrote'
ctr run -d --uidmap 0:200000:65536 --gidmap 0:200000:65536 localhost/busybox:latest mapped sleep 300 >/dev/null
expect "a running --uidmap container's range is recorded" 0 '^mapped=200000$' ranges
expect "a container started meanwhile gets a range that does not overlap it" 0 '^ +0 +100000 +65536$' \
        ctr run --rm localhost/busybox:latest c4 cat /proc/self/uid_map
ctr tasks kill -s KILL mapped >/dev/null 2>&1
for _ in $(seq 50); do ctr tasks ls -q | grep -qx mapped || break; sleep 0.1; done
ctr tasks delete mapped >/dev/null 2>&1
ctr containers delete mapped >/dev/null 2>&1
expect "deleting it gives the range back" 0 '^$' ranges
