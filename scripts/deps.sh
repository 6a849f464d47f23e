#!/usr/bin/env bash
# Installs the Debian packages Stockade needs to build, test and demo; quick when all are present.
set -euo pipefail

packages=(
        gcc make pkg-config clang libclang-rt-14-dev
        libcjson-dev libssl-dev openssl libev-dev libseccomp-dev libcap-dev
        libsystemd-dev libcurl4-openssl-dev libfuse3-dev fuse3 lxcfs
        scdoc man-db debhelper dpkg-dev fakeroot lintian
        python3 e2fsprogs util-linux procps iproute2 libc6-dev
        docker.io containerd runc busybox-static podman
)

missing=()
for p in "${packages[@]}"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        [[ $status == "install ok installed" ]] || missing+=("$p")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0

if [[ $(id -u) -ne 0 ]]; then
        echo "deps: missing packages: ${missing[*]} (run as root to install them)" >&2
        exit 1
fi
echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
