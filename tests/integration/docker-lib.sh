# Sourced by the Docker integration tests (after lib.sh): a real dockerd (Debian's docker.io)
# wired to stockade-runc, and the agent, in a scratch directory. dockerd runs in a mount
# namespace of its own, so every mount it, containerd and the runtime make vanishes with
# it; it never touches iptables. All of it is stopped on exit.

docker_require() {
        [[ $(id -u) -eq 0 ]] || { echo "SKIP: Docker tests need root"; exit 0; }
        local missing=()
        for tool in dockerd docker containerd runc busybox; do
                command -v "$tool" >/dev/null || missing+=("$tool")
        done
        [[ ${#missing[@]} -eq 0 ]] || { echo "FAIL: Docker tests: missing ${missing[*]} (make deps installs them)"; exit 1; }
}

# docker_agent_config [EXTRA JSON MEMBERS]: writes the agent's configuration.
docker_agent_config() {
        mkdir -p "$SCRATCH/etc" "$SCRATCH/state" "$SCRATCH/run"
        cat >"$SCRATCH/etc/stockaded.json" <<JSON
{"control": ["unix:$SCRATCH/control.sock"], "stateDir": "$SCRATCH/state", "trustRoot": "$SCRATCH/etc/root.json",
 "engineConfig": "$SCRATCH/etc/daemon.json", "engineDataRoot": "$SCRATCH/docker/data",
 "engineSocket": "$SCRATCH/docker.sock", "runDir": "$SCRATCH/run", "runtime": "$STOCKADE_BIN/stockade-runc",
 "runc": "$(command -v runc)", "locks": [], "hostShares": ["$SCRATCH"] ${1:+, $1}}
JSON
}

AGENT_PID=
# docker_start_agent [WRAPPER ARG...]: the agent, or WRAPPER running it (AGENT_PID is then
# the wrapper's, which passes SIGTERM on).
docker_start_agent() {
        "$@" "$STOCKADE_BIN/stockaded" --config "$SCRATCH/etc/stockaded.json" >>"$SCRATCH/agent.log" 2>&1 &
        AGENT_PID=$!
        for _ in $(seq 100); do
                "$STOCKADE_BIN/stockadectl" --socket "unix:$SCRATCH/control.sock" status >/dev/null 2>&1 && return 0
                sleep 0.05
        done
        echo "FAIL: the agent did not start: $(tail -5 "$SCRATCH/agent.log")"
        return 1
}
docker_stop_agent() {
        [[ -n $AGENT_PID ]] && { kill "$AGENT_PID"; wait "$AGENT_PID"; } 2>/dev/null
        AGENT_PID=
        # The /proc emulation's mount, left by an agent that could not unmount it.
        umount -l "$SCRATCH/run/procfs" 2>/dev/null
        true
}

DOCKERD_PID=
# docker_start [DOCKERD OPTION...]
docker_start() {
        mkdir -p "$SCRATCH/docker/data" "$SCRATCH/docker/exec" "$SCRATCH/path"
        chmod 755 "$SCRATCH"
        # "runc" on dockerd's PATH is Stockade too: --runtime=runc gets no way around it.
        runtime_wrapper "$SCRATCH/path/runc"
        # The engine config is the one the agent rendered.
        PATH=$SCRATCH/path:$PATH unshare -m --propagation private \
                dockerd --config-file "$SCRATCH/etc/daemon.json" \
                --data-root "$SCRATCH/docker/data" --exec-root "$SCRATCH/docker/exec" \
                --pidfile "$SCRATCH/docker/docker.pid" -H "unix://$SCRATCH/docker.sock" \
                --iptables=false --ip6tables=false --ip-forward=false --ip-masq=false --bridge=none \
                --userland-proxy=false --storage-driver=overlay2 "$@" >"$SCRATCH/dockerd.log" 2>&1 &
        DOCKERD_PID=$!
        export DOCKER_HOST=unix://$SCRATCH/docker.sock
        for _ in $(seq 120); do
                docker info >/dev/null 2>&1 && break
                sleep 0.25
        done
        docker info >/dev/null 2>&1 || { echo "FAIL: dockerd did not start: $(tail -5 "$SCRATCH/dockerd.log")"; return 1; }
        docker_import_busybox
}

docker_stop() {
        [[ -n $DOCKERD_PID ]] || return 0
        docker ps -aq 2>/dev/null | xargs -r docker rm -f >/dev/null 2>&1
        kill "$DOCKERD_PID" 2>/dev/null
        for _ in $(seq 80); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.25; done
        kill -9 "$DOCKERD_PID" 2>/dev/null
        wait "$DOCKERD_PID" 2>/dev/null
        # containerd and its shims were started by dockerd inside its namespace.
        pkill -f "$SCRATCH/docker/" 2>/dev/null
        DOCKERD_PID=
}

# docker_run ARGS...: docker run --rm, without the engine's warning about forwarding.
docker_run() {
        docker run --rm "$@" 2>&1 | grep -v '^WARNING: IPv4 forwarding'
        return "${PIPESTATUS[0]}"
}

# runtime_wrapper PATH: an executable that runs stockade-runc with the test's configuration.
runtime_wrapper() {
        printf '#!/bin/sh\nexec "%s" --stockade-config "%s" "$@"\n' "$STOCKADE_BIN/stockade-runc" "$SCRATCH/etc/stockaded.json" >"$1"
        chmod 755 "$1"
}

# busybox_root DIR: a root filesystem of busybox-static, root in passwd and group.
busybox_root() {
        local root=$1
        mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root"
        cp "$(command -v busybox)" "$root/bin/busybox"
        for applet in $("$root/bin/busybox" --list); do
                [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
        done
        echo 'root:x:0:0:root:/root:/bin/sh' >"$root/etc/passwd"
        echo 'root:x:0:' >"$root/etc/group"
}

# An image from busybox-static: no registry is reachable here.
docker_import_busybox() {
        local root=$SCRATCH/image
        busybox_root "$root"
        # Small static probes for the tests and benchmarks.
        gcc -static -O2 -o "$root/bin/vsock-probe" "$STOCKADE_TOP/tests/integration/vsock-probe.c"
        gcc -static -O2 -o "$root/bin/mount-probe" "$STOCKADE_TOP/tests/integration/mount-probe.c"
        gcc -static -O2 -o "$root/bin/seccomp-probe" "$STOCKADE_TOP/tests/integration/seccomp-probe.c"
        gcc -static -O2 -o "$root/bin/procfs-read" "$STOCKADE_TOP/tests/bench/procfs-read.c"
        gcc -static -O2 -o "$root/bin/notify-loop" "$STOCKADE_TOP/tests/bench/notify-loop.c" -lseccomp 2>/dev/null
        tar -C "$root" -c . | docker import -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - stockade-test:latest >/dev/null
}

# docker_setup [DOCKERD OPTION...]
docker_setup() {
        docker_require
        on_exit docker_stop_agent
        on_exit docker_stop
        docker_start_agent && docker_start "$@"
}

# docker_admin_init: a trust root of the test's own (etc/root.json, key admin.key in the
# current directory), for push_settings. Before the agent starts.
docker_admin_init() {
        mkdir -p etc
        "$STOCKADE_BIN/stockadectl" keygen --out admin >/dev/null
        "$STOCKADE_BIN/stockadectl" root init --threshold 1 --key admin.pub --sign admin.key >etc/root.json
        SETTINGS_SERIAL=0
}
# push_settings JSON: signs admin-settings.json content and pushes it to the agent.
push_settings() {
        SETTINGS_SERIAL=$((SETTINGS_SERIAL + 1))
        printf '%s' "$1" >settings.json
        "$STOCKADE_BIN/stockadectl" sign --key admin.key --org acme --serial $SETTINGS_SERIAL --valid-for 1d settings.json >bundle.json &&
                "$STOCKADE_BIN/stockadectl" --socket "unix:$SCRATCH/control.sock" push bundle.json >/dev/null
}
