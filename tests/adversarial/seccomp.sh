#!/usr/bin/env bash
# Attacks on the seccomp rules under a real Docker engine, in plain and --privileged
# containers: AF_VSOCK through io_uring and the 32-bit ABIs, a syscall newer than the
# profile (open_tree_attr), and engine profiles that would loosen the rules (default
# action SCMP_ACT_LOG; a profile that denies mount and socket).
. "$(dirname "$0")/../integration/lib.sh"
. "$(dirname "$0")/../integration/docker-lib.sh"
cd "$SCRATCH"
docker_require
docker_agent_config
docker_setup || exit 1
img=stockade-test
probe() { docker_run "$@"; }
mkdir -p ro-dir

# Whether this machine runs the i386 ABI at all (some hypervisors' guests answer every int
# 0x80 with SIGSEGV): the probe, outside any container and seccomp filter.
i386_host=$("$SCRATCH/image/bin/seccomp-probe" i386-getpid 2>&1)
i386=$([[ $i386_host == 'i386 getpid: succeeded' ]] && echo yes)
for mode in plain privileged; do
        opts=(-v "$SCRATCH/ro-dir:/ro:ro")
        [[ $mode == privileged ]] && opts+=(--privileged)
        expect "$mode: io_uring is refused, so IORING_OP_SOCKET makes no AF_VSOCK socket" 1 \
                '^io_uring_setup: Operation not permitted$' probe "${opts[@]}" $img seccomp-probe uring-vsock
        expect "$mode: open_tree_attr (467, newer than the profile) cannot clone /proc" 1 \
                '^open_tree_attr\(/proc\): Function not implemented$' probe "${opts[@]}" $img seccomp-probe open-tree-attr /proc
        expect "$mode: open_tree_attr cannot clear RDONLY on a read-only mount" 1 \
                '^open_tree_attr\(/ro\): Function not implemented$' probe "${opts[@]}" $img seccomp-probe open-tree-attr /ro
        # The i386 and x32 ABIs are refused as a whole: their first call kills the process.
        if [[ -n $i386 ]]; then
                expect "$mode: socketcall(AF_VSOCK) through int 0x80 is refused" 1 \
                        '^i386-vsock: killed by Bad system call$' probe "${opts[@]}" $img seccomp-probe i386-vsock
                expect "$mode: umount of /proc through int 0x80 is refused" 0 '^i386-umount: killed by Bad system call; /proc still mounted$' \
                        probe "${opts[@]}" $img sh -c 'echo "$(seccomp-probe i386-umount /proc); $(test -e /proc/self/status && echo /proc still mounted)"'
        else
                skip "$mode: int 0x80 cases: this machine's kernel runs no i386 call even without seccomp ($i386_host); tests/vm/check.sh runs them in its guests"
        fi
        expect "$mode: socket(AF_VSOCK) through x32 is refused" 1 \
                '^x32-vsock: killed by Bad system call$' probe "${opts[@]}" $img seccomp-probe x32-vsock
        expect "$mode: umount2 of /proc through x32 is refused" 0 '^x32-umount: killed by Bad system call; /proc still mounted$' \
                probe "${opts[@]}" $img sh -c 'echo "$(seccomp-probe x32-umount /proc); $(test -e /proc/self/status && echo /proc still mounted)"'
done

# A profile whose default action is SCMP_ACT_LOG (everything allowed, and logged): every
# rule of Stockade's still holds.
echo '{"defaultAction": "SCMP_ACT_LOG"}' >log.json
out=$(probe --security-opt seccomp="$SCRATCH/log.json" $img seccomp-probe refused)
bad=
for call in init_module finit_module delete_module kexec_load kexec_file_load bpf \
        open_by_handle_at io_uring_setup io_uring_enter io_uring_register; do
        grep -qx "$call: Operation not permitted" <<<"$out" || bad+=" $call"
done
for call in fsopen fsconfig fsmount fspick move_mount open_tree mount_setattr open_tree_attr keyctl add_key request_key; do
        grep -qx "$call: Function not implemented" <<<"$out" || bad+=" $call"
done
if [[ -z $bad ]]; then
        pass "LOG profile: modules, kexec, bpf, file handles and io_uring get EPERM, the new mount API and the keyring ENOSYS"
else
        fail "LOG profile: refused calls" "not refused:$bad; output: $(tr '\n' ';' <<<"$out")"
fi
expect "LOG profile: AF_VSOCK sockets are refused" 1 '^socket\(AF_VSOCK\): Operation not permitted$' \
        probe --security-opt seccomp="$SCRATCH/log.json" $img vsock-probe
expect "LOG profile: AF_VSOCK through io_uring is refused" 1 '^io_uring_setup: Operation not permitted$' \
        probe --security-opt seccomp="$SCRATCH/log.json" $img seccomp-probe uring-vsock
expect "LOG profile: a syscall Stockade does not name is refused" 1 '^sysfs: Operation not permitted$' \
        probe --security-opt seccomp="$SCRATCH/log.json" $img seccomp-probe sysfs
expect "LOG profile: mount is vetted by the agent (a read-only volume stays read-only)" 0 '^/ro: Operation not permitted; still ro$' \
        probe --security-opt seccomp="$SCRATCH/log.json" --cap-add SYS_ADMIN -v "$SCRATCH/ro-dir:/ro:ro" $img sh -c \
        'echo -n "$(mount-probe remount-rw /ro); "; touch /ro/x 2>/dev/null || echo "still ro"'
expect "LOG profile: umount /proc is vetted by the agent" 0 '^umount: refused$' \
        probe --security-opt seccomp="$SCRATCH/log.json" --cap-add SYS_ADMIN $img sh -c 'umount /proc 2>/dev/null && echo "umount: done" || echo "umount: refused"'

# A profile that denies mount and socket (with an errno of its own for socket): they stay
# denied, even with CAP_SYS_ADMIN.
cat >deny.json <<'JSON'
{"defaultAction": "SCMP_ACT_ALLOW",
 "syscalls": [{"names": ["mount"], "action": "SCMP_ACT_ERRNO"},
              {"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13}]}
JSON
# (busybox mount reports EPERM as "permission denied (are you root?)")
expect "deny profile: mount stays denied with --cap-add SYS_ADMIN and nothing is mounted" 0 \
        '^mount: permission denied \(are you root\?\); not mounted$' probe --security-opt seccomp="$SCRATCH/deny.json" --cap-add SYS_ADMIN $img sh -c \
        'mkdir -p /mnt/t; echo "$(mount -t tmpfs none /mnt/t 2>&1); $(grep -q " /mnt/t " /proc/mounts && echo mounted || echo not mounted)"'
expect "deny profile: socket(AF_INET) stays denied with the profile's errno" 1 '^socket\(AF_INET\): Permission denied$' \
        probe --security-opt seccomp="$SCRATCH/deny.json" $img seccomp-probe inet
expect "deny profile: socket(AF_VSOCK) stays denied" 1 '^socket\(AF_VSOCK\): Permission denied$' \
        probe --security-opt seccomp="$SCRATCH/deny.json" $img vsock-probe
