#!/usr/bin/env bash
# One overlay super block per upper directory (issue 11): what the engine shows of a running
# container (docker cp, docker diff, docker export) must be what the container wrote, also
# after the engine looked at the same files first. Two super blocks on one upper directory
# (the engine's merged mount and Stockade's ID-mapped one) break this: the engine's keeps
# the lower file and directory listing it cached, and the kernel warns that "upperdir is
# in-use". These cases fail until Stockade stops mounting a second overlay, so they run
# only with STOCKADE_KNOWN_ISSUES=1.
[[ ${STOCKADE_KNOWN_ISSUES:-} == 1 ]] || { echo "SKIP: issue 11, two overlay super blocks on one upper directory (STOCKADE_KNOWN_ISSUES=1 runs it)"; exit 0; }
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
cd "$SCRATCH"
docker_require
docker_agent_config
docker_setup || exit 1
img=stockade-test

warnings() { dmesg 2>/dev/null | grep -c 'upperdir is in-use' || true; }
before=$(warnings)
docker run -d --name coherent $img sleep 300 >/dev/null 2>&1
after=$(warnings)
if (( after == before )); then
        pass "starting a container leaves no 'upperdir is in-use' kernel warning"
else
        fail "starting a container leaves no 'upperdir is in-use' kernel warning" "$((after - before)) new"
fi

# The engine reads first, then the container changes an image file, adds one, removes one.
docker cp coherent:/etc - >/dev/null 2>&1
docker cp coherent:/etc/passwd - >/dev/null 2>&1
docker exec coherent sh -c 'echo "x:x:1:1::/:/bin/sh" >>/etc/passwd; echo new >/etc/newfile; rm /etc/group'
listing=$(docker cp coherent:/etc - 2>&1 | tar -t 2>&1 | tr '\n' ' ')
expect "docker cp shows the file the container changed" 0 '^2$' sh -c 'docker cp coherent:/etc/passwd - | tar -xO | wc -l'
if grep -q 'etc/newfile' <<<"$listing" && ! grep -q 'etc/group' <<<"$listing"; then
        pass "docker cp lists what the container added and not what it removed"
else
        fail "docker cp lists what the container added and not what it removed" "$listing"
fi
expect "docker diff shows the changes" 0 'A /etc/newfile' docker diff coherent
expect "docker export has the added file" 0 'etc/newfile' sh -c 'docker export coherent | tar -t | grep newfile'
docker rm -f coherent >/dev/null 2>&1
