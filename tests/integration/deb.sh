#!/usr/bin/env bash
# The Debian package: `make deb` builds it with dpkg-buildpackage, lintian reports no error,
# and `dpkg -i` installs it, maintainer scripts included, into a scratch root: an overlay
# whose lower layer is this machine's root and whose upper layer is a tmpfs, in a mount
# namespace of the test's own, so neither the machine's files nor its dpkg database change.
# There the group exists, the units are enabled the Debian way, each man page renders, and
# the installed agent starts with the packaged configuration and answers stockadectl.
# systemd is not PID 1 here, so the units are enabled but not started (the VM suite boots
# units).
. "$(dirname "$0")/lib.sh"
[[ $(id -u) -eq 0 ]] || { echo "SKIP: the package test needs root"; exit 0; }
[[ -z ${STOCKADE_SANITIZED:-} ]] || { echo "SKIP: the package builds binaries of its own, not the sanitized ones make check tests"; exit 0; }
for tool in dpkg-buildpackage dh lintian scdoc man unshare chroot; do
        command -v "$tool" >/dev/null || { echo "FAIL: $tool is missing (make deps installs it)"; exit 1; }
done

start=$SECONDS
if ! deb=$(make -s -C "$STOCKADE_TOP" --no-print-directory deb BUILDDIR="$SCRATCH/build" 2>&1 | tail -n 1) || [[ ! -f $deb ]]; then
        fail "make deb builds the package" "$deb"
        exit 1
fi
name=$(basename "$deb")
version=$(dpkg-parsechangelog -l "$STOCKADE_TOP/debian/changelog" -S Version)
[[ $name == "stockade_${version}_amd64.deb" ]] && pass "make deb builds $name ($((SECONDS - start)) s)" ||
        fail "make deb builds stockade_${version}_amd64.deb" "got $name"
# tests/run hands it on to the VM suite, which installs it in a guest.
[[ -n ${STOCKADE_DEB_DIR:-} ]] && cp "$deb" "$STOCKADE_DEB_DIR/"

if out=$(lintian --fail-on error "$deb" 2>&1); then
        pass "lintian reports no error ($(grep -c '^W: ' <<<"$out") warnings)"
else
        fail "lintian reports no error" "$(grep '^E: ' <<<"$out" | head -n 10)"
fi

# Everything below runs in a mount namespace of its own, whose mounts vanish with it.
cat >"$SCRATCH/install.sh" <<'SH'
set -u
scratch=$1 deb=$2 version=$3
root=$scratch/overlay/root
mount -t tmpfs tmpfs "$scratch/overlay"
mkdir -p "$scratch/overlay/upper" "$scratch/overlay/work" "$root"
mount -t overlay overlay -o "lowerdir=/,upperdir=$scratch/overlay/upper,workdir=$scratch/overlay/work,xino=on" "$root"
mount -t proc proc "$root/proc"
mount --bind /dev "$root/dev"
mount -t tmpfs tmpfs "$root/run"
mount -t tmpfs tmpfs "$root/tmp"
# No service is started from the maintainer scripts (nor could be: no systemd in there).
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"
cp "$deb" "$root/tmp/"
in_root() { chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LC_ALL=C.UTF-8 "$@"; }

result() { if [[ $1 -eq 0 ]]; then echo "PASS: $2"; else echo "FAIL: $2${3:+: $3}"; fi; }

out=$(in_root dpkg -i "/tmp/$(basename "$deb")" 2>&1)
result $? "dpkg -i installs the package in the scratch root" "$(tail -n 5 <<<"$out")"
status=$(in_root dpkg-query -W -f='${Status}' stockade 2>&1)
result "$([[ $status == "install ok installed" ]]; echo $?)" "dpkg records it as installed" "$status"
in_root getent group stockade >/dev/null
result $? "the postinst created the group stockade (sysusers.d)"
wants=$root/etc/systemd/system
[[ -L $wants/multi-user.target.wants/stockaded.service && -L $wants/sockets.target.wants/stockaded.socket ]]
result $? "stockaded.service and stockaded.socket are enabled" "$(ls "$wants"/*.wants 2>&1 | tr '\n' ' ')"
[[ $(stat -c %a "$root/var/lib/stockade" 2>&1) == 700 ]]
result $? "tmpfiles.d made /var/lib/stockade (0700)"
grep -q '^ExecStart=/usr/bin/stockaded ' "$root/lib/systemd/system/stockaded.service" &&
        grep -q '^Environment=PATH=/usr/libexec/stockade:' "$root/lib/systemd/system/docker.service.d/stockade.conf" &&
        [[ $(readlink -f "$root/usr/libexec/stockade/runc") == "$root/usr/bin/stockade-runc" ]]
result $? "the units and drop-ins name the installed binaries; /usr/libexec/stockade/runc is stockade-runc"

for page in man1/stockadectl.1 man5/stockaded.json.5 man7/stockade-settings.7 man8/stockaded.8 man8/stockade-runc.8; do
        warnings=$(MANWIDTH=80 man --warnings -l "$root/usr/share/man/$page.gz" 2>&1 >/dev/null)
        [[ -f $root/usr/share/man/$page.gz && -z $warnings ]]
        result $? "man -l renders the installed $page" "$warnings"
done

# The installed agent, with the packaged /etc/stockade/stockaded.json (comments and all).
trap '[[ -n ${agent:-} ]] && kill "$agent" && wait "$agent"' EXIT
(exec chroot "$root" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /usr/bin/stockaded --foreground >"$scratch/agent.log" 2>&1) &
agent=$!
for _ in $(seq 100); do
        in_root stockadectl status >/dev/null 2>&1 && break
        sleep 0.05
done
out=$(in_root stockadectl status 2>&1)
result $? "the installed agent starts with the packaged configuration and answers stockadectl status" \
        "$out $(tail -n 5 "$scratch/agent.log")"
grep -q "stockaded $version," <<<"$out"
result $? "the agent's version (agent.c) is the package's ($version, debian/changelog)" "$(head -n 1 <<<"$out")"
socket=$(in_root stat -c '%U:%G %a' /run/stockade/control.sock 2>&1)
result "$([[ $socket == "root:stockade 660" ]]; echo $?)" "its control socket is root:stockade 0660" "$socket"
grep -q '"path":[[:space:]]*"/usr/bin/stockade-runc"' "$root/etc/docker/daemon.json" 2>/dev/null
result $? "it wrote daemon.json with the packaged runtime path" "$(cat "$root/etc/docker/daemon.json" 2>&1)"
out=$(in_root /usr/libexec/stockade/runc list 2>&1)
result "$([[ $out == ID* ]]; echo $?)" "the installed runtime reads the packaged configuration and runs runc (runc list)" "$out"
kill "$agent"
wait "$agent"
result $? "the agent stops cleanly on SIGTERM" "$(tail -n 5 "$scratch/agent.log")"
agent=
# The agent's own words: it locked what it was configured to lock.
grep -q "Cannot lock" "$scratch/agent.log"
result "$((! $?))" "the agent took its locks" "$(grep "Cannot lock" "$scratch/agent.log")"
SH
mkdir -p "$SCRATCH/overlay"
unshare -m --propagation private bash "$SCRATCH/install.sh" "$SCRATCH" "$deb" "$version"
echo "# package test: $((SECONDS - start)) s"
