#!/usr/bin/env bash
# The VM suite: boots a Debian 12 guest with Stockade installed as README.md's "Installing
# on a VM" section says, once per kernel (6.1, Debian 12's default, and 6.12), runs
# tests/vm/check.sh inside it and prints its PASS:/FAIL:/SKIP: lines for tests/run.
#
#   tests/vm/run.sh [--kernel 6.1|6.12]... [--interactive] [--keep] [--prepare]
#
# --prepare only installs QEMU and mmdebstrap where they are missing and builds the cached
# guest image (tests/run starts it first, so that the image is built while other tests run).
# --interactive boots the first kernel with a root shell on this terminal instead of the
# checks (log in as root, password "stockade"; the check script is on the disk labelled
# PAYLOAD; Ctrl-A X quits QEMU). --keep leaves the work directory (disks, serial logs).
# STOCKADE_VM=skip skips the suite; STOCKADE_VM_CACHE moves the image cache
# (default /var/cache/stockade-vm); STOCKADE_VM_TIMEOUT bounds each boot (default 600 s);
# STOCKADE_VM_REBOOT=0 leaves out the second boot of the first kernel's disk;
# STOCKADE_DEB_DIR names a directory holding the package to install (else make deb).
#
# The guest has no network (-nic none) and no vsock device: vsock is exercised inside it
# through the loopback transport only. Nothing it does reaches this machine.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/vm
build=${STOCKADE_BIN:+$(dirname "$STOCKADE_BIN")}
build=${build:-$top/build}
kernels=()
interactive=0 keep=0 prepare=0
while [[ $# -gt 0 ]]; do
        case $1 in
        --kernel) kernels+=("$2"); shift 2 ;;
        --interactive) interactive=1; shift ;;
        --keep) keep=1; shift ;;
        --prepare) prepare=1; shift ;;
        *) echo "usage: tests/vm/run.sh [--kernel 6.1|6.12]... [--interactive] [--keep] [--prepare]" >&2; exit 2 ;;
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
# The guests booted at once share this machine's CPUs, none given more vCPUs than its
# share: overcommitted vCPUs under TCG wait on each other (on 2 cores, two guests at once
# were up 52 and 60 s when their checks began with -smp 2 each, 35 and 48 s with -smp 1).
booting=$((interactive == 1 ? 1 : ${#kernels[@]}))
smp=$(($(nproc) / booting))
[[ $smp -ge 1 ]] || smp=1

start=$SECONDS
# A machine that cannot build the image (no Debian mirror in reach, say) cannot run the
# suite: SKIP with the reason, never a silent pass.
image_err=$(mktemp)
image=$("$here/image.sh" 2>"$image_err") ||
        skip "building the guest image failed: $(tail -n 3 "$image_err" | tr '\n' ' '; rm -f "$image_err")"
rm -f "$image_err"
[[ $prepare -eq 1 ]] && exit 0
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

# ---- the per-run disks: Stockade installed as README.md says, by hand and from the package ----
t=$SECONDS
admin=$work/admin
ctl=$build/bin/stockadectl

# Step 4's trust root, made here as an administrator would on their own machine, and a first
# signed settings bundle; the same for every disk.
mkdir -p "$admin"
(cd "$admin" &&
        "$ctl" keygen --out admin1 >/dev/null && "$ctl" keygen --out admin2 >/dev/null &&
        "$ctl" root init --threshold 2 --key admin1.pub --key admin2.pub \
                --sign admin1.key --sign admin2.key >root.json &&
        "$ctl" sign --key admin1.key --key admin2.key --org acme --serial 1 --valid-for 30d \
                "$here/admin-settings.json" >bundle.json) || { echo "FAIL: vm: making the trust root failed"; exit 1; }

# The kernels after the first boot a disk installed from the Debian package: the one in
# STOCKADE_DEB_DIR (tests/run's, built from this tree by integration/deb.sh), else one that
# make deb builds meanwhile.
package=0 deb=
if [[ ${#kernels[@]} -gt 1 ]]; then
        package=1
        [[ -n ${STOCKADE_DEB_DIR:-} ]] && deb=$(compgen -G "$STOCKADE_DEB_DIR/stockade_*.deb" | head -n 1)
        if [[ -z $deb ]]; then
                make -C "$top" --no-print-directory -s deb BUILDDIR="$work/deb-build" >"$work/deb.log" 2>&1 &
                deb_pid=$!
        fi
fi

# configure_stockade ROOT: README.md, "Installing on a VM", steps 4 and 5 (the trust root,
# the first bundle committed to the state directory so that the settings are enforced from
# the first boot, before any network; the agent's configuration), and what the test adds:
# the vsock loopback transport, loaded at boot, and a shorter watchdog interval so that the
# hung-agent check waits 10 s rather than 30.
configure_stockade() {
        local dest=$1
        install -d -m 0755 "$dest/etc/stockade"
        install -m 0644 "$admin/root.json" "$dest/etc/stockade/root.json"
        install -d -m 0700 "$dest/var/lib/stockade"
        "$ctl" verify --root "$dest/etc/stockade/root.json" --org acme --state-dir "$dest/var/lib/stockade" \
                --commit "$admin/bundle.json" >/dev/null || return 1
        # The vsock addresses are the test's: the guest's own CID 1 through the loopback
        # transport (a desktop VM names the host, vsock:2:PORT), and one that accepts CID 2
        # only, to see a CID 1 peer refused.
        install -m 0644 "$here/stockaded.json" "$dest/etc/stockade/stockaded.json"
        echo vsock_loopback >"$dest/etc/modules-load.d/stockade-vm.conf"
        mkdir -p "$dest/etc/systemd/system/stockaded.service.d"
        printf '[Service]\nWatchdogSec=10\n' >"$dest/etc/systemd/system/stockaded.service.d/vm-test.conf"
}

# install_stockade ROOT: README.md, "Installing on a VM", with DESTDIR=ROOT. Each step
# names the README's; keep them in step.
install_stockade() {
        local dest=$1
        # 2. Build and install.
        make -C "$top" --no-print-directory -s install DESTDIR="$dest" PREFIX=/usr/local BUILDDIR="$build" \
                >"$work/install.log" 2>&1 || { cat "$work/install.log"; return 1; }
        # 3. The group that may read the agent's status.
        systemd-sysusers --root="$dest" >/dev/null 2>&1 || return 1
        configure_stockade "$dest" || return 1
        # 6. Enable the units.
        systemctl --root="$dest" enable stockaded.socket stockaded.service >/dev/null 2>&1 || return 1
}

# install_package ROOT DEB: README.md, "Installing on a VM": the package does steps 2, 3 and
# 6. dpkg -i runs chrooted in ROOT, in a mount namespace of its own (its /proc, /dev and a
# /run that vanish with it), with a policy-rc.d that lets its scripts start no service.
install_package() {
        local dest=$1 deb=$2
        cp "$deb" "$dest/tmp/" || return 1
        unshare -m --propagation private bash -c '
                mount -t proc proc "$1/proc" && mount --bind /dev "$1/dev" && mount -t tmpfs tmpfs "$1/run" || exit 1
                printf "#!/bin/sh\nexit 101\n" >"$1/usr/sbin/policy-rc.d" && chmod 755 "$1/usr/sbin/policy-rc.d" || exit 1
                chroot "$1" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 dpkg -i "/tmp/$2"
                rc=$?
                rm -f "$1/usr/sbin/policy-rc.d"
                exit $rc' install-package "$dest" "${deb##*/}" >"$work/dpkg.log" 2>&1 ||
                { cat "$work/dpkg.log"; return 1; }
        rm -f "$dest/tmp/${deb##*/}"
        configure_stockade "$dest"
}

# make_disk ROOT IMAGE: an ext4 disk image of ROOT (mkfs.ext4 -d, no loop mount); ROOT goes.
make_disk() {
        truncate -s 6G "$2" && mkfs.ext4 -q -F -L root -d "$1" "$2" || { echo "FAIL: vm: mkfs.ext4 -d failed"; exit 1; }
        rm -rf "$1"
}

root=$work/root
cp -a "$image/root" "$root" || { echo "FAIL: vm: copying the image failed"; exit 1; }
install_stockade "$root" || { echo "FAIL: vm: installing Stockade as README.md says failed"; exit 1; }
make_disk "$root" "$work/root.img"
if [[ $package -eq 1 ]]; then
        [[ -n $deb ]] || { wait "$deb_pid" && deb=$(tail -n 1 "$work/deb.log"); }
        [[ -f $deb ]] || { echo "FAIL: vm: make deb failed: $(tail -n 5 "$work/deb.log" | tr '\n' ' ')"; exit 1; }
        cp -a "$image/root" "$root" || { echo "FAIL: vm: copying the image failed"; exit 1; }
        install_package "$root" "$deb" || { echo "FAIL: vm: installing Stockade's package ${deb##*/} failed"; exit 1; }
        make_disk "$root" "$work/root-package.img"
fi
mkdir -p "$work/payload"
cp "$here/check.sh" "$work/payload/"
gcc -static -O2 -o "$work/payload/seccomp-probe" "$top/tests/integration/seccomp-probe.c" ||
        { echo "FAIL: vm: building seccomp-probe failed"; exit 1; }
truncate -s 16M "$work/payload.img"
mkfs.ext4 -q -F -L PAYLOAD -d "$work/payload" "$work/payload.img" || exit 1
echo "# vm: per-run disks with Stockade installed in $((SECONDS - t)) s$([[ $package -eq 1 ]] && echo ", one from ${deb##*/}")"

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
        echo qemu-system-x86_64 "${accel[@]}" -smp "$smp" -m 2048 -kernel "${files[0]}"
        [[ ${#files[@]} -gt 1 ]] && echo -initrd "${files[1]}"
        if [[ ${#files[@]} -gt 1 ]]; then
                echo -drive "file=$disk,format=raw,if=virtio,snapshot=$snap" \
                        -drive "file=$work/payload.img,format=raw,if=virtio,readonly=on"
        else
                # No initramfs: the root disk is NVMe, which 6.12 cloud has built in; the
                # only one, as NVMe controllers are probed in parallel and then numbered in
                # the order they come up: with the payload on a second one, it was now
                # and then nvme0n1 and mounted as the root file system, and its writes
                # failed ("aio failed: Operation not permitted": it is read-only). The
                # payload is on virtio, whose driver is a module, loaded from the root.
                echo -drive "file=$disk,format=raw,if=none,id=root,snapshot=$snap" \
                        -device nvme,serial=root,drive=root \
                        -drive "file=$work/payload.img,format=raw,if=virtio,readonly=on"
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

# boot K TAG DISK SNAPSHOT GRACE [ARG]: one batch boot of kernel K, ARG added to its command
# line; results in results-TAG.txt. A guest that printed its END marker and has not powered
# off GRACE s later is stopped.
boot() {
        local k=$1 tag=$2 disk=$3 snap=$4 grace=$5 arg=${6:-} ended=
        : >"$work/console-$tag.log"
        : >"$work/results-$tag.txt"
        # shellcheck disable=SC2046
        timeout "${STOCKADE_VM_TIMEOUT:-600}" $(qemu_args "$k" "$disk" "$snap") -monitor none \
                -serial "file:$work/console-$tag.log" -serial "file:$work/results-$tag.txt" \
                -append "root=$(root_device "$k") rw console=ttyS0 apparmor=0 panic=-1 stockade.check${arg:+ $arg}" \
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

# session K FIRST: kernel K's boots. The first kernel boots a disk of its own twice (the
# second boot checks what a reboot keeps and frees), the others the disk installed from the
# package in snapshot mode, once.
session() {
        local k=$1
        if [[ $2 -eq 1 && ${STOCKADE_VM_REBOOT:-1} -eq 1 ]]; then
                cp --sparse=always "$work/root.img" "$work/root-$k.img" && sync "$work/root-$k.img" || return
                boot "$k" "$k" "$work/root-$k.img" off 90
                boot "$k" "$k-reboot" "$work/root-$k.img" off 90
        elif [[ $2 -eq 0 && $package -eq 1 ]]; then
                boot "$k" "$k" "$work/root-package.img" on 4 stockade.install=package
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
                [[ $first -eq 1 && ${STOCKADE_VM_REBOOT:-1} -eq 1 ]] && tags+=("$k-reboot")
        else
                echo "FAIL: vm: $k: no such kernel in the image ($image)"
        fi
done
wait "${session_pids[@]}"
session_pids=()
for tag in "${tags[@]}"; do
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
