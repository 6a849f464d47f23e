#!/usr/bin/env bash
# Builds the Debian 12 guest image the VM suite boots, once per recipe: a directory tree
# made by mmdebstrap from this machine's own apt sources, plus each kernel (and the 6.1
# initramfs) beside it. The cache lives outside the repository, keyed on a hash of this
# script, the package list, the guest's files and the apt sources, so fresh clones reuse
# it. Prints the cache directory. Nothing of Stockade is in it: run.sh installs Stockade
# into a per-run copy, as the README says.
#
#   tests/vm/image.sh [--rebuild]      STOCKADE_VM_CACHE (default /var/cache/stockade-vm)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
cache_root=${STOCKADE_VM_CACHE:-/var/cache/stockade-vm}
rebuild=0
[[ ${1:-} == --rebuild ]] && rebuild=1

sources=()
[[ -f /etc/apt/sources.list ]] && grep -q '^deb ' /etc/apt/sources.list && sources+=(/etc/apt/sources.list)
for f in /etc/apt/sources.list.d/*.sources /etc/apt/sources.list.d/*.list; do
        [[ -f $f ]] && grep -qi 'debian' "$f" && sources+=("$f")
done
[[ ${#sources[@]} -gt 0 ]] || { echo "image: no Debian apt sources on this machine" >&2; exit 1; }

key=$(cat "$here/image.sh" "$here/packages" "${sources[@]}" \
        $(find "$here/guest" -type f | sort) | sha256sum | cut -c1-16)
dir=$cache_root/$key
if [[ $rebuild -eq 0 && -f $dir/done ]]; then
        echo "$dir"
        exit 0
fi

mkdir -p "$cache_root"
exec 9>"$cache_root/.lock"
flock 9
if [[ $rebuild -eq 0 && -f $dir/done ]]; then
        echo "$dir"
        exit 0
fi

rm -rf "$dir.tmp"
mkdir -p "$dir.tmp"
packages=$(grep -v '^#' "$here/packages" | paste -sd, -)
start=$SECONDS
# 6.1: a small initramfs that force-loads what finding the root disk takes (21 s -> 2 s).
# 6.12 (cloud) has virtio and ext4 built in and boots without one.
mmdebstrap --variant=minbase --mode=root --format=directory --include="$packages" \
        --setup-hook='mkdir -p "$1/etc/initramfs-tools/conf.d"; echo MODULES=list >"$1/etc/initramfs-tools/conf.d/stockade-vm"; printf "%s\n" virtio_pci virtio_blk ext4 crc32c_generic >"$1/etc/initramfs-tools/modules"' \
        --customize-hook="cp -a '$here/guest/.' \"\$1/\"" \
        --customize-hook='chroot "$1" systemctl enable stockade-vm-check.service' \
        --customize-hook='echo stockade-vm >"$1/etc/hostname"; : >"$1/etc/machine-id"' \
        --customize-hook='printf "%s\n" "LABEL=root / ext4 defaults 0 1" >"$1/etc/fstab"' \
        --customize-hook='echo "root:stockade" | chroot "$1" chpasswd' \
        bookworm "$dir.tmp/root" "${sources[@]}" >"$dir.tmp/mmdebstrap.log" 2>&1 || {
        tail -20 "$dir.tmp/mmdebstrap.log" >&2
        exit 1
}
for k in "$dir.tmp"/root/boot/vmlinuz-*; do
        v=${k##*/vmlinuz-}
        cp "$k" "$dir.tmp/vmlinuz-$v"
        [[ -f $dir.tmp/root/boot/initrd.img-$v ]] && cp "$dir.tmp/root/boot/initrd.img-$v" "$dir.tmp/initrd.img-$v"
done
echo "built in $((SECONDS - start)) s" >"$dir.tmp/done"
rm -rf "$dir"
mv "$dir.tmp" "$dir"
echo "$dir"
