#!/usr/bin/env bash
# The VM suite: boots a Debian 12 guest with Stockade installed as README.md's "Installing
# on a VM" section says, once per kernel (6.1, Debian 12's default, and 6.12), runs
# tests/vm/check.sh inside it and prints its PASS:/FAIL:/SKIP: lines for tests/run.
#
#   tests/vm/run.sh [--kernel 6.1|6.12]... [--interactive] [--keep]
#
# --interactive boots the first kernel with a root shell on this terminal instead of the
# checks (log in as root, password "stockade"; the check script is on /dev/vdb, label
# PAYLOAD; Ctrl-A X quits QEMU). --keep leaves the work directory (disks, serial logs).
# STOCKADE_VM=skip skips the suite; STOCKADE_VM_CACHE moves the image cache
# (default /var/cache/stockade-vm); STOCKADE_VM_TIMEOUT bounds each boot (default 600 s);
# STOCKADE_VM_REBOOT=0 leaves out the second boot of the first kernel's disk.
#
# The guest has no network (-nic none) and no vsock device: vsock is exercised inside it
# through the loopback transport only. Nothing it does reaches this machine.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/vm
build=${STOCKADE_BIN:+$(dirname "$STOCKADE_BIN")}
build=${build:-$top/build}
kernels=()
interactive=0 keep=0
while [[ $# -gt 0 ]]; do
        case $1 in
        --kernel) kernels+=("$2"); shift 2 ;;
        --interactive) interactive=1; shift ;;
        --keep) keep=1; shift ;;
        *) echo "usage: tests/vm/run.sh [--kernel 6.1|6.12]... [--interactive] [--keep]" >&2; exit 2 ;;
        esac
done
[[ ${#kernels[@]} -gt 0 ]] || kernels=(6.12 6.1)

skip() { echo "SKIP: vm: $*"; exit 0; }

[[ ${STOCKADE_VM:-} == skip ]] && skip "STOCKADE_VM=skip"
[[ -n ${STOCKADE_SANITIZED:-} ]] && skip "sanitizer builds are not installed into the guest"
[[ $(id -u) -eq 0 ]] || skip "building the guest image and installing into it need root"
[[ $(uname -m) == x86_64 ]] || skip "the guest is x86_64 and this machine is $(uname -m)"
if ! command -v qemu-system-x86_64 >/dev/null || ! command -v mmdebstrap >/dev/null; then
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
                qemu-system-x86 mmdebstrap >/dev/null 2>&1
        command -v qemu-system-x86_64 >/dev/null || skip "qemu-system-x86_64 is missing and could not be installed"
        command -v mmdebstrap >/dev/null || skip "mmdebstrap is missing and could not be installed"
fi
for c in mkfs.ext4 systemctl systemd-sysusers timeout; do
        command -v "$c" >/dev/null || skip "$c is missing"
done

# KVM only where it can run a stock kernel: hardware virtualisation and not kvm_pvm (which
# runs PVM guests only; see ../shared/VM.md). Else TCG, which is slow but works anywhere.
if [[ -w /dev/kvm ]] && grep -qwE 'vmx|svm' /proc/cpuinfo && [[ ! -d /sys/module/kvm_pvm ]]; then
        accel=(-accel kvm -cpu host)
else
        accel=(-accel tcg,thread=multi -cpu max)
fi

start=$SECONDS
# A machine that cannot build the image (no Debian mirror in reach, say) cannot run the
# suite: SKIP with the reason, never a silent pass.
image_err=$(mktemp)
image=$("$here/image.sh" 2>"$image_err") ||
        skip "building the guest image failed: $(tail -n 3 "$image_err" | tr '\n' ' '; rm -f "$image_err")"
rm -f "$image_err"
echo "# vm: image $image ($(cat "$image/done")), ready after $((SECONDS - start)) s; ${accel[*]:0:2}"

work=$(mktemp -d /var/tmp/stockade-vm.XXXXXX)
session_pids=()
cleanup() {
        local f
        for f in "${session_pids[@]}"; do
                kill "$f" 2>/dev/null
        done
        for f in "$work"/pid-*; do
                [[ -f $f ]] && kill "$(cat "$f")" 2>/dev/null
        done
        wait
        if [[ $keep -eq 1 ]]; then
                echo "# vm: kept $work"
        else
                rm -rf "$work"
        fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the per-run copy, Stockade installed as README.md says ----
t=$SECONDS
root=$work/root
cp -a "$image/root" "$root" || { echo "FAIL: vm: copying the image failed"; exit 1; }

# install_stockade ROOT: README.md, "Installing on a VM", with DESTDIR=ROOT. Each step
# names the README's; keep them in step.
install_stockade() {
        local dest=$1 admin=$work/admin
        mkdir -p "$admin"
        # 2. Build and install.
        make -C "$top" --no-print-directory -s install DESTDIR="$dest" PREFIX=/usr/local BUILDDIR="$build" \
                >"$work/install.log" 2>&1 || { cat "$work/install.log"; return 1; }
        # 3. The group that may read the agent's status.
        systemd-sysusers --root="$dest" >/dev/null 2>&1 || return 1
        # 4. The trust root (made here, as an administrator would on their own machine) and
        #    a first signed settings bundle, committed to the state directory so that the
        #    settings are enforced from the first boot, before any network.
        local ctl=$build/bin/stockadectl
        (cd "$admin" &&
                "$ctl" keygen --out admin1 >/dev/null && "$ctl" keygen --out admin2 >/dev/null &&
                "$ctl" root init --threshold 2 --key admin1.pub --key admin2.pub \
                        --sign admin1.key --sign admin2.key >root.json &&
                "$ctl" sign --key admin1.key --key admin2.key --org acme --serial 1 --valid-for 30d \
                        "$here/admin-settings.json" >bundle.json) || return 1
        install -d -m 0755 "$dest/etc/stockade"
        install -m 0644 "$admin/root.json" "$dest/etc/stockade/root.json"
        install -d -m 0700 "$dest/var/lib/stockade"
        "$ctl" verify --root "$dest/etc/stockade/root.json" --org acme --state-dir "$dest/var/lib/stockade" \
                --commit "$admin/bundle.json" >/dev/null || return 1
        # 5. The agent's configuration. The vsock addresses are the test's: the guest's own
        #    CID 1 through the loopback transport (a desktop VM names the host, vsock:2:PORT),
        #    and one that accepts CID 2 only, to see a CID 1 peer refused.
        install -m 0644 "$here/stockaded.json" "$dest/etc/stockade/stockaded.json"
        # 6. Enable the units.
        systemctl --root="$dest" enable stockaded.socket stockaded.service >/dev/null 2>&1 || return 1
}
install_stockade "$root" || { echo "FAIL: vm: installing Stockade as README.md says failed"; exit 1; }
# The test's own: the vsock loopback transport, loaded at boot, and a shorter watchdog
# interval so that the hung-agent check waits 10 s rather than 30.
echo vsock_loopback >"$root/etc/modules-load.d/stockade-vm.conf"
mkdir -p "$root/etc/systemd/system/stockaded.service.d"
printf '[Service]\nWatchdogSec=10\n' >"$root/etc/systemd/system/stockaded.service.d/vm-test.conf"

truncate -s 6G "$work/root.img"
mkfs.ext4 -q -F -L root -d "$root" "$work/root.img" || { echo "FAIL: vm: mkfs.ext4 -d failed"; exit 1; }
rm -rf "$root"
mkdir -p "$work/payload"
cp "$here/check.sh" "$work/payload/"
truncate -s 16M "$work/payload.img"
mkfs.ext4 -q -F -L PAYLOAD -d "$work/payload" "$work/payload.img" || exit 1
echo "# vm: per-run disk with Stockade installed in $((SECONDS - t)) s"

kernel_files() { # VERSION -> vmlinuz [initrd]
        local k
        for k in "$image"/vmlinuz-"$1".*; do
                [[ -f $k ]] || continue
                local v=${k##*/vmlinuz-}
                echo "$k"
                # 6.12 cloud has virtio and ext4 built in; 6.1 needs its modules.
                [[ $1 != 6.12 && -f $image/initrd.img-$v ]] && echo "$image/initrd.img-$v"
                return 0
        done
        return 1
}

qemu_args() { # KERNEL_VERSION [DISK [snapshot=on|off]] -> the common QEMU command line
        local files disk=${2:-$work/root.img} snap=${3:-on}
        mapfile -t files < <(kernel_files "$1")
        echo qemu-system-x86_64 "${accel[@]}" -smp 2 -m 2048 -kernel "${files[0]}"
        [[ ${#files[@]} -gt 1 ]] && echo -initrd "${files[1]}"
        if [[ ${#files[@]} -gt 1 ]]; then
                echo -drive "file=$disk,format=raw,if=virtio,snapshot=$snap" \
                        -drive "file=$work/payload.img,format=raw,if=virtio,readonly=on"
        else
                # No initramfs: the disks are NVMe, which 6.12 cloud has built in.
                echo -drive "file=$disk,format=raw,if=none,id=root,snapshot=$snap" \
                        -device nvme,serial=root,drive=root \
                        -drive "file=$work/payload.img,format=raw,if=none,id=payload,readonly=on" \
                        -device nvme,serial=payload,drive=payload
        fi
        echo -nic none -display none -vga none -no-reboot
}

root_device() { # KERNEL_VERSION -> root=
        local files
        mapfile -t files < <(kernel_files "$1")
        if [[ ${#files[@]} -gt 1 ]]; then echo /dev/vda; else echo /dev/nvme0n1; fi
}

if [[ $interactive -eq 1 ]]; then
        k=${kernels[0]}
        kernel_files "$k" >/dev/null || { echo "vm: no $k kernel in $image" >&2; exit 1; }
        # shellcheck disable=SC2046
        $(qemu_args "$k") -serial mon:stdio \
                -append "root=$(root_device "$k") rw console=ttyS0 apparmor=0 panic=-1"
        exit 0
fi

# boot K TAG DISK SNAPSHOT GRACE: one batch boot of kernel K; results in results-TAG.txt.
# A guest that printed its END marker and has not powered off GRACE s later is stopped.
boot() {
        local k=$1 tag=$2 disk=$3 snap=$4 grace=$5 ended=
        : >"$work/console-$tag.log"
        : >"$work/results-$tag.txt"
        # shellcheck disable=SC2046
        timeout "${STOCKADE_VM_TIMEOUT:-600}" $(qemu_args "$k" "$disk" "$snap") -monitor none \
                -serial "file:$work/console-$tag.log" -serial "file:$work/results-$tag.txt" \
                -append "root=$(root_device "$k") rw console=ttyS0 apparmor=0 panic=-1 stockade.check" \
                >"$work/qemu-$tag.log" 2>&1 &
        local pid=$!
        echo "$pid" >"$work/pid-$tag"
        local killed=0
        while kill -0 "$pid" 2>/dev/null; do
                if grep -q '^END stockade-vm-check' "$work/results-$tag.txt"; then
                        ended=${ended:-$SECONDS}
                        [[ $((SECONDS - ended)) -ge $grace ]] && kill "$pid" 2>/dev/null && killed=1
                fi
                sleep 2
        done
        wait "$pid"
        echo $? >"$work/rc-$tag"
        # Shutting down is the guest's own: the agent must not hold it up.
        if [[ -n $ended && $grace -gt 4 ]]; then
                if [[ $killed -eq 0 ]]; then
                        echo "PASS: $tag: the guest powered off $((SECONDS - ended)) s after the checks" >"$work/poweroff-$tag"
                else
                        echo "FAIL: $tag: the guest powered off within $grace s after the checks ($(grep -ao 'Job [^ ]* running' "$work/console-$tag.log" | tail -n 1))" >"$work/poweroff-$tag"
                fi
        fi
        rm -f "$work/pid-$tag"
}

# Seen here on boots of the writable disk (not of snapshots), one in three or so: QEMU's
# NVMe reads fail with EPERM ("aio failed: Operation not permitted") and the kernel finds
# no root; the same disk boots fine the next time. Not understood yet: booted once more.
boot_retry() {
        local tag=$2
        boot "$@"
        if ! grep -q '^BEGIN stockade-vm-check' "$work/results-$tag.txt" && grep -q 'aio failed' "$work/qemu-$tag.log"; then
                echo "# vm: $tag: QEMU could not read the disk ($(head -n 1 "$work/qemu-$tag.log")); booting again" \
                        >"$work/retry-$tag"
                boot "$@"
        fi
}

# session K FIRST: kernel K's boots. The first kernel boots a disk of its own twice (the
# second boot checks what a reboot keeps and frees), the others the shared disk in
# snapshot mode, once.
session() {
        local k=$1
        if [[ $2 -eq 1 && ${STOCKADE_VM_REBOOT:-1} -eq 1 ]]; then
                cp --sparse=always "$work/root.img" "$work/root-$k.img" && sync "$work/root-$k.img" || return
                boot_retry "$k" "$k" "$work/root-$k.img" off 90
                boot_retry "$k" "$k-reboot" "$work/root-$k.img" off 90
        else
                boot "$k" "$k" "$work/root.img" on 4
        fi
}

# The kernels boot at the same time: under TCG one guest keeps this machine's CPUs only
# partly busy.
t=$SECONDS
booted=() tags=() session_pids=()
for k in "${kernels[@]}"; do
        if kernel_files "$k" >/dev/null; then
                first=$([[ ${#booted[@]} -eq 0 ]] && echo 1 || echo 0)
                session "$k" "$first" &
                session_pids+=($!)
                booted+=("$k")
                tags+=("$k")
                [[ $first -eq 1 ]] && tags+=("$k-reboot")
        else
                echo "FAIL: vm: $k: no such kernel in the image ($image)"
        fi
done
wait "${session_pids[@]}"
session_pids=()
for tag in "${tags[@]}"; do
        [[ -f $work/retry-$tag ]] && cat "$work/retry-$tag"
        results=$work/results-$tag.txt
        rc=$(cat "$work/rc-$tag" 2>/dev/null || echo none)
        if grep -q '^END stockade-vm-check' "$results" 2>/dev/null; then
                sed -n '/^BEGIN stockade-vm-check/,/^END stockade-vm-check/p' "$results" |
                        grep -E '^(PASS|FAIL|SKIP): |^# ' | sed 's/^\(PASS\|FAIL\|SKIP\): /\1: vm: /'
                [[ -f $work/poweroff-$tag ]] && sed 's/^\(PASS\|FAIL\): /\1: vm: /' "$work/poweroff-$tag"
                grep -q '^check.sh exit status 0' "$results" ||
                        echo "FAIL: vm: $tag: $(grep '^check.sh exit status' "$results" || echo 'check.sh did not finish')"
        else
                echo "FAIL: vm: $tag: the guest did not finish its checks (QEMU exit status $rc)"
                grep -E '^(PASS|FAIL|SKIP): ' "$results" 2>/dev/null | sed 's/^\(PASS\|FAIL\|SKIP\): /\1: vm: /'
                tail -n 25 "$work/console-$tag.log" 2>/dev/null | sed 's/^/# console: /'
        fi
done
echo "# vm: ${booted[*]}: boots and checks in $((SECONDS - t)) s"
echo "# vm: $((SECONDS - start)) s in all"
