#!/usr/bin/env bash
# Containers sharing namespaces with each other under a real Docker engine: a "pause"
# container and members that join its network and IPC namespaces (and its pid namespace)
# join its user namespace too and share its uid range, which the agent holds until the
# last of them is removed. Compose's `network_mode: service:NAME` is the same mechanism as
# `--network=container:ID` (the engine gets the container's id), so it is tested that way.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require

docker_agent_config
docker_setup || exit 1
img=stockade-test
# ranges: "ID:BASE" of every container the agent holds a range for, sorted.
ranges() {
        "$ctl" --socket "unix:$SCRATCH/control.sock" status --json |
                python3 -c 'import json,sys; print(" ".join(sorted("%s:%d" % (c["id"], c["uid_base"]) for c in json.load(sys.stdin)["containers"]["list"])))'
}
nslinks='for n in user net ipc; do readlink /proc/self/ns/$n; done | tr "\n" " "'
in_ns() { docker exec "$1" sh -c "${*:2}" 2>&1; }

docker run -d --name pause --ipc=shareable $img sleep 300 >/dev/null 2>&1
pause_id=$(docker inspect -f '{{.Id}}' pause 2>/dev/null)
pause_map=$(in_ns pause cat /proc/self/uid_map)
pause_base=$(awk '{print $2}' <<<"$pause_map")
members=(m1 m2 m3)
for m in m1 m2; do
        docker run -d --name $m --network=container:pause --ipc=container:pause $img sleep 300 >/dev/null 2>"$m.err"
done
# As Compose starts a service with network_mode "service:pause": by the container's id.
docker run -d --name m3 --network="container:$pause_id" --ipc="container:$pause_id" $img sleep 300 >/dev/null 2>m3.err

same=0
for m in "${members[@]}"; do
        [[ $(in_ns $m cat /proc/self/uid_map) == "$pause_map" && -n $pause_map ]] && same=$((same + 1))
done
if [[ $same -eq 3 ]]; then
        pass "three members of --network=container:pause --ipc=container:pause show the pause's uid_map ($pause_base)"
else
        fail "members show the pause's uid_map" "pause '$pause_map'; m1 '$(in_ns m1 cat /proc/self/uid_map)'; errors: $(cat m1.err m2.err m3.err | head -c 400)"
fi

want=$(in_ns pause "$nslinks")
same=0
for m in "${members[@]}"; do [[ $(in_ns $m "$nslinks") == "$want" ]] && same=$((same + 1)); done
[[ $same -eq 3 ]] && pass "the members are in the pause's user, network and IPC namespaces" ||
        fail "the members are in the pause's user, network and IPC namespaces" "pause: $want; m1: $(in_ns m1 "$nslinks")"

# Loopback between members: m2 listens, m1 and m3 each send a line. A listener whose stdin
# has ended (exec -d gives it /dev/null) closes a connection at once, before what the
# sender wrote after it connected arrives: each reads a pipe that stays open instead.
docker exec -d m2 sh -c 'sleep 60 | nc -l -p 7001 >/tmp/from-m1 & sleep 60 | nc -l -p 7002 >/tmp/from-m3 & wait'
sent=0
for _ in $(seq 50); do in_ns m1 'echo hello from m1 | nc 127.0.0.1 7001' >/dev/null && { sent=1; break; }; sleep 0.1; done
for _ in $(seq 50); do in_ns m3 'echo hello from m3 | nc 127.0.0.1 7002' >/dev/null && break; sleep 0.1; done
for _ in $(seq 50); do
        got=$(in_ns m2 'cat /tmp/from-m1 /tmp/from-m3')
        [[ $got == $'hello from m1\nhello from m3' ]] && break
        sleep 0.1
done
[[ $sent == 1 && $got == $'hello from m1\nhello from m3' ]] && pass "members talk over the shared loopback" ||
        fail "members talk over the shared loopback" "m2 got '$got'"

# Shared memory: what one member's root writes in /dev/shm the others see, as root's.
in_ns m1 'echo shared >/dev/shm/from-m1' >/dev/null
got=$(in_ns m3 'stat -c "%u %g" /dev/shm/from-m1 | tr "\n" " "; cat /dev/shm/from-m1')
pgot=$(in_ns pause 'stat -c "%u %g" /dev/shm/from-m1 | tr "\n" " "; cat /dev/shm/from-m1')
[[ $got == "0 0 shared" && $pgot == "0 0 shared" ]] && pass "a /dev/shm file of one member is root's and seen by the others" ||
        fail "a /dev/shm file of one member is root's and seen by the others" "m3: '$got', pause: '$pgot'"

# The pid namespace: a member sees the pause's processes and signals them.
expect "--pid=container:pause sees the pause's processes" 0 'sleep 300' \
        docker_run --pid=container:pause --network=container:pause $img ps -o pid,user,args
expect "--pid=container:pause's proc shows the pause's uid_map" 0 "^ *0 +$pause_base +65536$" \
        docker_run --pid=container:pause $img cat /proc/1/uid_map
docker exec -d pause sleep 299
expect "--pid=container:pause kills a pause process" 0 '^killed$' \
        docker_run --pid=container:pause $img sh -c 'kill $(ps -o pid,args | awk "/sleep 299\$/ {print \$1}") && echo killed'
sleep 0.2
[[ $(in_ns pause 'ps -o args' | grep -c '^sleep 299$') == 0 ]] && pass "the pause's process is gone" || fail "the pause's process is gone"
expect "--pid=container:pause --privileged mounts a proc of its own" 0 '^ok$' \
        docker_run --privileged --pid=container:pause $img sh -c 'mkdir -p /p && mount -t proc proc /p && test -d /p/1 && echo ok'

# Joining two containers that do not share a user namespace is refused.
docker run -d --name other --ipc=shareable $img sleep 300 >/dev/null 2>&1
other_id=$(docker inspect -f '{{.Id}}' other 2>/dev/null)
expect "joining the network of one container and the IPC of another is refused" 125 \
        "stockade: can't join both the network namespace of container '[0-9a-f]{64}' and the ipc namespace of container '$other_id': their user namespaces differ" \
        docker_run --network=container:pause --ipc=container:other $img true
docker rm -f other >/dev/null 2>&1

# The range is held while any container uses it.
want_before="$(tr ' ' '\n' <<<"$(ranges)" | grep -c ":$pause_base$")"
docker rm -f m1 m2 m3 >/dev/null 2>&1
if [[ $want_before -eq 4 && $(ranges) == "$pause_id:$pause_base" ]] &&
   [[ $(docker_run $img cat /proc/self/uid_map | awk '{print $2}') != "$pause_base" ]]; then
        pass "after removing the members the pause's range ($pause_base) is still held and not given out"
else
        fail "after removing the members the pause's range is still held" "before: $want_before in the range; now: $(ranges)"
fi
docker run -d --name m4 --network=container:pause $img sleep 300 >/dev/null 2>&1
docker rm -f pause >/dev/null 2>&1
d_id=$(docker inspect -f '{{.Id}}' m4 2>/dev/null)
[[ $(ranges) == "$d_id:$pause_base" && $(in_ns m4 'echo alive') == alive ]] &&
        pass "removing the pause first keeps the range for the member still running" ||
        fail "removing the pause first keeps the range for the member still running" "$(ranges)"
docker rm -f m4 >/dev/null 2>&1
[[ -z $(ranges) ]] && pass "after removing all of them every range is free" || fail "after removing all of them every range is free" "$(ranges)"
