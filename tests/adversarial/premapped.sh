#!/usr/bin/env bash
# Pre-mapped engines (ctr --uidmap, podman --uidmap, userns-remap, hostUsers: false): an
# engine's own mapping is kept only when it maps no VM id below the floor of Stockade's
# ranges (VM root included) and overlaps no other container's ids. Each of these creates is
# refused with the reason, and nothing is left recorded for it.
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
. "$(dirname "$0")/../integration/engine-lib.sh"
engine_require containerd ctr
engine_agent_setup
containerd_setup

# premap NAME MAP: ctr run with uid and gid maps MAP (container:host:size).
premap() { ctr run --rm --uidmap "$2" --gidmap "$2" localhost/busybox:latest "$1" true; }

expect "a mapping of VM root is refused" 1 "stockade: the engine's uid map '0 0 65536' maps VM root" premap root 0:0:65536
expect "a mapping below the floor is refused" 1 "stockade: the engine's uid map '0 50000 65536' maps VM ids below 100000, the floor of Stockade's ranges" \
        premap low 0:50000:65536
expect "a mapping reaching past the last uid is refused" 1 "stockade: the engine's uid map '0 4294967000 65536' .*" \
        premap high 0:4294967000:65536

ctr run -d localhost/busybox:latest plain sleep 300 >/dev/null
expect "a mapping over a running container's range is refused" 1 "stockade: the engine's uid map '0 120000 65536' overlaps the ids of container 'plain'" \
        premap over-plain 0:120000:65536
ctr run -d --uidmap 0:300000:65536 --gidmap 0:300000:65536 localhost/busybox:latest mapped sleep 300 >/dev/null
expect "a mapping over a running pre-mapped container is refused" 1 "stockade: the engine's uid map '0 330000 65536' overlaps the ids of container 'mapped'" \
        premap over-mapped 0:330000:65536
expect "uid and gid maps that differ are refused" 1 "stockade: the engine's user namespace must map uids and gids alike" \
        ctr run --rm --uidmap 0:400000:65536 --gidmap 0:500000:65536 localhost/busybox:latest differ true
expect "only what ran is recorded" 0 '^mapped=300000 plain=100000$' ranges
