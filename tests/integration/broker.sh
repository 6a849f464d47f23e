#!/usr/bin/env bash
# The seccomp-notify broker under a real Docker engine: a container root with
# CAP_SYS_ADMIN in its namespace (--cap-add SYS_ADMIN, --privileged) may mount what
# containers mount, but cannot undo what was set up at creation.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/docker-lib.sh"
ctl=$STOCKADE_BIN/stockadectl
cd "$SCRATCH"
docker_require
docker_agent_config
docker_setup || exit 1
img=stockade-test
mkdir -p ro-dir && echo data >ro-dir/file
status_json() { "$ctl" --socket "unix:$SCRATCH/control.sock" status --json; }

# check_all PREFIX RUNNER...: the vetted-call checks, through RUNNER (a docker run or exec).
check_all() {
        local p=$1; shift
        expect "$p: mount -t tmpfs works" 0 '^tmpfs ok$' "$@" sh -c 'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && touch /mnt/t/x && echo tmpfs ok'
        expect "$p: remount,ro of a tmpfs mounted inside works" 0 '^ro ok$' "$@" sh -c \
                'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && mount -o remount,ro /mnt/t && ! touch /mnt/t/x 2>/dev/null && grep -q " /mnt/t tmpfs ro," /proc/mounts && echo ro ok'
        expect "$p: remount,size=2m of a tmpfs mounted inside works" 0 '^size ok$' "$@" sh -c \
                'mkdir -p /mnt/t && mount -t tmpfs none /mnt/t && mount -o remount,size=2m /mnt/t && grep -q " /mnt/t tmpfs rw,.*size=2048k" /proc/mounts && echo size ok'
        expect "$p: remount,rw of / works" 0 '^rw ok$' "$@" sh -c 'mount -o remount,rw / && touch /rw-ok && echo rw ok'
        expect "$p: remount,ro of / makes it read-only, remount,rw writable again" 0 '^ro, rw again$' "$@" sh -c \
                'mount -o remount,ro / && ! touch /ro-x 2>/dev/null && echo -n "ro, " && mount -o remount,rw / && touch /ro-x && echo rw again'
        expect "$p: a bind mount inside works" 0 '^bind ok$' "$@" sh -c 'mkdir -p /b1 /b2 && echo hi >/b1/f && mount --bind /b1 /b2 && grep -q hi /b2/f && echo bind ok'
        expect "$p: remounting the read-only volume rw is refused" 0 '^/data: Operation not permitted; still ro$' "$@" sh -c \
                'mount -o remount,rw /data 2>/dev/null; echo -n "$(mount-probe remount-rw /data); "; touch /data/x 2>/dev/null || echo "still ro"'
        expect "$p: the same for a bind of it made inside" 0 '^/d2: Operation not permitted; still ro$' "$@" sh -c \
                'mkdir -p /d2 && mount --bind /data /d2 && echo -n "$(mount-probe remount-rw /d2); "; touch /d2/x 2>/dev/null || echo "still ro"'
        expect "$p: umount /proc fails" 0 '^refused$' "$@" sh -c 'umount /proc 2>/dev/null && echo unmounted || echo refused'
        expect "$p: umount /sys fails" 0 '^refused$' "$@" sh -c 'umount /sys 2>/dev/null && echo unmounted || echo refused'
        expect "$p: umount -l /proc fails" 0 '^refused$' "$@" sh -c 'umount -l /proc 2>/dev/null && echo unmounted || echo refused'
        expect "$p: a new proc mount works, shows the container's pids and stays masked" 0 \
                '^proc ok, pid 1 is the container.s, keys and timer_list empty$' "$@" sh -c \
                'mkdir -p /mnt/p && mount -t proc proc /mnt/p && test -e /mnt/p/self/status && echo -n "proc ok, " && cmp -s /mnt/p/1/cmdline /proc/1/cmdline && echo -n "pid 1 is the container'"'"'s, " && [ "$(head -c 16 /mnt/p/keys | wc -c)" = 0 ] && [ "$(head -c 16 /mnt/p/timer_list | wc -c)" = 0 ] && echo "keys and timer_list empty"'
        expect "$p: mknod c 1 3 works and behaves as /dev/null" 0 '^null ok$' "$@" sh -c \
                'mknod /tmp/null c 1 3 && echo gone >/tmp/null && [ -z "$(cat /tmp/null)" ] && echo null ok'
        expect "$p: a block device node is refused" 0 '^refused$' "$@" sh -c 'mknod /tmp/vda b 254 0 2>/dev/null && echo made || echo refused'
        expect "$p: mounting a VM block device fails" 0 '^refused$' "$@" sh -c 'mkdir -p /m; mount -t ext4 /dev/vda /m 2>/dev/null && echo mounted || echo refused'
}

check_all "run --cap-add SYS_ADMIN" docker_run --cap-add SYS_ADMIN -v "$SCRATCH/ro-dir:/data:ro" $img
check_all "run --privileged" docker_run --privileged -v "$SCRATCH/ro-dir:/data:ro" $img
expect "run --read-only: remount,rw of / is refused, / stays read-only" 0 '^still ro$' docker_run --read-only --cap-add SYS_ADMIN $img sh -c \
        'mount -o remount,rw / 2>/dev/null; touch /x 2>/dev/null || echo "still ro"'
docker run -d --name execme --cap-add SYS_ADMIN -v "$SCRATCH/ro-dir:/data:ro" $img sleep 300 >/dev/null 2>&1
check_all "docker exec" docker exec execme
docker rm -f execme >/dev/null 2>&1

# A neighbour keeps mounting while another container feeds the broker garbage.
docker run -d --name neighbour --cap-add SYS_ADMIN $img sh -c \
        'mkdir -p /mnt/t; while true; do mount -t tmpfs none /mnt/t && umount /mnt/t || echo FAILED; sleep 0.1; done' >/dev/null 2>&1
neighbour=$(docker inspect -f '{{.Id}}' neighbour)
allowed_of() { status_json | python3 -c '
import json, sys
print(sum(c["allowed"] for c in json.load(sys.stdin)["containers"]["list"] if c["id"] == sys.argv[1]))' "$1"; }
sleep 0.5
before=$(allowed_of "$neighbour")
out=$(docker_run --cap-add SYS_ADMIN $img mount-probe bad)
sleep 0.5
after=$(allowed_of "$neighbour")
if grep -q '^null target: Bad address$' <<<"$out" && grep -q '^unmapped target: Bad address$' <<<"$out" &&
   grep -qE '^unterminated target: (Bad address|File name too long)$' <<<"$out" &&
   grep -qE '^huge fstype: (No such device|File name too long|Invalid argument|Bad address)$' <<<"$out" &&
   grep -qE '^huge mknod path: File name too long$' <<<"$out" &&
   grep -q '^good tmpfs after all that: succeeded$' <<<"$out" &&
   (( before > 0 && after > before + 4 )) && ! docker logs neighbour 2>&1 | grep -q FAILED; then
        pass "bad pointers, unterminated strings and huge lengths get errors; a neighbour's calls go on being answered"
else
        fail "bad pointers, unterminated strings and huge lengths get errors" "neighbour allowed $before -> $after; $out"
fi
docker rm -f neighbour >/dev/null 2>&1

# A listener of the container's own would see its mounts first and could let them through.
expect "a container cannot install a seccomp listener of its own" 0 "^own seccomp listener: Device or resource busy$" \
        docker_run --privileged $img mount-probe own-listener

"$ctl" --socket "unix:$SCRATCH/control.sock" events --json >events.jsonl 2>&1 &
on_exit "kill $! 2>/dev/null"
sleep 0.2
docker run -d --name counted --cap-add SYS_ADMIN $img sleep 300 >/dev/null 2>&1
id=$(docker inspect -f '{{.Id}}' counted)
docker exec counted sh -c 'mknod /tmp/blk b 8 0; mount -t tmpfs none /tmp' >/dev/null 2>&1
sleep 0.5
if status_json | python3 -c '
import json, sys
s = json.load(sys.stdin)["containers"]
c = [c for c in s["list"] if c["id"] == sys.argv[1]]
assert c and c[0]["denied"] == 1 and c[0]["allowed"] == 1 and c[0]["pid"] > 0, c
assert c[0]["helpers"] == 0 and c[0]["queued"] == 0 and s["limits"]["helpers_per_container"] > 0, s' "$id" &&
   grep -q "\"method\":\"syscall.denied\".*\"container\":\"$id\".*\"syscall\":\"mknod" events.jsonl &&
   grep -q "Container '$id': mknod.* denied" agent.log; then
        pass "each call is counted once in status (with the helper limits), refusals emitted as syscall.denied and logged"
else
        fail "each call is counted once in status, refusals emitted as syscall.denied and logged" "$(status_json | python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)["containers"]["list"]))'); $(tail -3 events.jsonl)"
fi
# The seccomp profile's refusals go through the agent: the container gets the same errno,
# and each refusal is an event with the container, the pid and the syscall, and a log line.
docker run --name refuser $img sh -c 'seccomp-probe refused; vsock-probe' >refuser.out 2>&1
rid=$(docker inspect -f '{{.Id}}' refuser)
docker rm refuser >/dev/null 2>&1
sleep 0.5
bad=
for call in keyctl add_key request_key init_module finit_module delete_module kexec_load kexec_file_load bpf \
        open_by_handle_at fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr socket; do
        errno="Operation not permitted"
        case $call in fs* | move_mount | open_tree | mount_setattr | keyctl | add_key | request_key) errno="Function not implemented" ;; esac
        [[ $call == socket ]] && { grep -qx 'socket(AF_VSOCK): Operation not permitted' refuser.out || bad+=" $call(output)"; } ||
                grep -qx "$call: $errno" refuser.out || bad+=" $call(output)"
        grep -q "\"method\":\"syscall.denied\".*\"container\":\"$rid\",\"pid\":[1-9][0-9]*,\"syscall\":\"$call\"" events.jsonl ||
                bad+=" $call(event)"
        grep -q "Container '$rid': $call denied to pid [1-9]" agent.log || bad+=" $call(log)"
done
grep -qx 'io_uring_setup: Operation not permitted' refuser.out || bad+=" io_uring_setup(output)"
if [[ -z $bad ]]; then
        pass "the profile's refusals (keyring, modules, kexec, bpf, file handles, new mount API, AF_VSOCK) keep their errno and are events and log lines"
else
        fail "the profile's refusals are events" "missing:$bad; $(tr '\n' ';' <refuser.out)"
fi
# Reports are rate-limited per container: 108 refusals at once, then 18 a second later,
# give at most 20 events a second, and the first report after says how many went
# unreported.
docker run --name flood $img sh -c 'for i in 1 2 3 4 5 6; do seccomp-probe refused; done >/dev/null; sleep 1.2; seccomp-probe refused >/dev/null' >/dev/null 2>&1
fid=$(docker inspect -f '{{.Id}}' flood)
docker rm flood >/dev/null 2>&1
sleep 0.5
events=$(grep -c "\"method\":\"syscall.denied\".*\"container\":\"$fid\"" events.jsonl)
if (( events >= 20 && events < 126 )) && grep -q "\"container\":\"$fid\".*\"suppressed\":[1-9]" events.jsonl &&
   grep -q "Container '$fid': .* denied to pid [0-9]*: .* ([1-9][0-9]* more not reported)" agent.log; then
        pass "refusals are reported at most 20 a second per container, the rest counted ($events events for 126 refusals)"
else
        fail "refusals are rate-limited per container" "$events events"
fi
expect "stockadectl status lists the container with its range and counters" 0 \
        "^container:  ${id:0:12} pid [0-9]+, ids [0-9]+-[0-9]+, vetted calls [1-9][0-9]* allowed, [1-9][0-9]* denied$" \
        "$ctl" --socket "unix:$SCRATCH/control.sock" status
fds_before=$(ls /proc/$AGENT_PID/fd | wc -l)
docker rm -f counted >/dev/null 2>&1
for _ in $(seq 50); do
        status_json | grep -q "$id" || break
        sleep 0.1
done
fds_after=$(ls /proc/$AGENT_PID/fd | wc -l)
if ! status_json | grep -q "$id" && (( fds_after < fds_before )); then
        pass "a removed container's record and fds are released (agent fds $fds_before -> $fds_after)"
else
        fail "a removed container's record and fds are released" "fds $fds_before -> $fds_after; $(status_json)"
fi

# An agent restarted without a service manager keeping its fds (no systemd, no
# stockade-keeper: see agent-restart.sh) has lost the notify fds of containers started before: their trapped
# calls fail (the kernel answers ENOSYS when no listener is left), never pass unvetted; a
# new docker exec into them is vetted by the new agent.
docker run -d --name survivor --cap-add SYS_ADMIN $img sh -c \
        'mkdir -p /mnt/t; while true; do if mount -t tmpfs none /mnt/t 2>/dev/null; then umount /mnt/t; echo mounted; else echo refused; fi; sleep 0.1; done' >/dev/null 2>&1
sleep 0.5
docker_stop_agent
docker_start_agent || exit 1
lines=$(docker logs survivor 2>&1 | wc -l) # skip one more: a call may have been in flight
sleep 1
log=$(docker logs survivor 2>&1)
after_restart=$(tail -n +$((lines + 2)) <<<"$log" | sort -u | tr '\n' ' ')
exec_out=$(docker exec survivor sh -c 'mkdir -p /mnt/e && mount -t tmpfs none /mnt/e && echo exec-mounted; mknod /tmp/sdb b 8 16 || echo exec-blk-refused' 2>&1)
if grep -q mounted <<<"$log" && [[ $after_restart == "refused " ]] && grep -q exec-mounted <<<"$exec_out" &&
   grep -q exec-blk-refused <<<"$exec_out"; then
        pass "after an agent restart older containers' vetted calls fail closed; a new exec is vetted"
else
        fail "after an agent restart older containers' vetted calls fail closed" "after restart: '$after_restart'; exec: $exec_out"
fi
docker rm -f survivor >/dev/null 2>&1
