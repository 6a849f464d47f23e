#!/usr/bin/env bash
# podman (Debian's 4.3, rootful) with stockade-runc as its runtime, the way the README wires
# it (a containers.conf runtime entry): run --rm, build, and --uidmap, which keeps podman's
# own mapping (a pre-mapped engine) and is recorded as that container's exclusive range.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
. "$(dirname "$0")/engine-lib.sh"
engine_require podman conmon
engine_agent_setup
podman_setup

expect "podman run --rm: own user namespace, writes its root" 0 '^ +0 +100000 +65536 uid=0\(root\) .* wrote$' \
        joined podman run --rm --pull=never localhost/busybox sh -c 'cat /proc/self/uid_map; id; touch /x && echo wrote'
expect "podman run --rm gives the range back" 0 '^$' ranges
# podman mounts a --rm container's overlay volatile; Stockade's mount of the same layers keeps it.
podman run -d --rm --name volatile --pull=never localhost/busybox sleep 300 >/dev/null
expect "podman's volatile overlay option is kept in Stockade's mount" 0 '^2$' \
        sh -c "nsenter -t $ENGINE_NS -m grep -c ' - overlay .*[,]\(fsync=\)\?volatile' /proc/self/mountinfo"
podman rm -f -t 0 volatile >/dev/null

mkdir -p "$SCRATCH/context"
printf 'FROM localhost/busybox\nRUN echo built >/built && id -u >>/built && ls -ln /built\n' >"$SCRATCH/context/Containerfile"
expect "podman build runs its RUN step under Stockade" 0 'COMMIT localhost/built' podman build --pull=never -t localhost/built "$SCRATCH/context"
expect "the built image holds what RUN wrote, as root's" 0 '^built 0 -rw-r--r-- +1 0 +0 ' \
        joined podman run --rm --pull=never localhost/built sh -c 'cat /built; ls -ln /built'

expect "podman run --uidmap keeps podman's mapping, the image is root's" 0 '^ +0 +200000 +65536 0 0 root$' \
        joined podman run --rm --pull=never --uidmap 0:200000:65536 localhost/busybox sh -c 'cat /proc/self/uid_map; stat -c "%u %g %U" /bin/busybox'
podman run -d --name mapped --pull=never --uidmap 0:200000:65536 localhost/busybox sleep 300 >/dev/null
expect "a running --uidmap container's range is recorded" 0 '=200000$' ranges
expect "a container started meanwhile gets a range that does not overlap it" 0 '^ +0 +100000 +65536' \
        podman run --rm --pull=never localhost/busybox cat /proc/self/uid_map
expect "a second pre-mapping over it is refused" 126 "stockade: .*uid map '0 230000 65536' overlaps the ids of container '[0-9a-f]+'" \
        podman run --rm --pull=never --uidmap 0:230000:65536 localhost/busybox true
podman rm -f -t 0 mapped >/dev/null
expect "removing it gives the range back" 0 '^$' ranges
