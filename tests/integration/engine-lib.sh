# Sourced (after lib.sh and docker-lib.sh) by the tests of engines other than Docker: podman
# and containerd (Debian's), each with its root, state and socket in the scratch directory,
# wired to stockade-runc, and the agent. The engines and everything they start run in one
# private mount namespace held by a sleeper, so their mounts vanish with it; all is stopped
# on exit.

engine_require() {
        [[ $(id -u) -eq 0 ]] || { echo "SKIP: engine tests need root"; exit 0; }
        local missing=()
        for tool in "$@" runc busybox; do
                command -v "$tool" >/dev/null || missing+=("$tool")
        done
        [[ ${#missing[@]} -eq 0 ]] || { echo "FAIL: missing ${missing[*]} (make deps installs them)"; exit 1; }
}

# The agent knows the engines' storage in the scratch directory.
engine_agent_setup() {
        local e=$SCRATCH/engines
        mkdir -p "$e"
        chmod 755 "$SCRATCH"
        docker_agent_config "\"engineStorage\": [\"$e/podman\", \"$e/podman-run\", \"$e/containerd\", \"$e/containerd-state\"]"
        on_exit docker_stop_agent
        docker_start_agent || exit 1
        runtime_wrapper "$SCRATCH/stockade-runc"

        mount_ns_holder
        ENGINE_NS=$HOLDER
}

# ---- podman ----

podman_setup() {
        local e=$SCRATCH/engines
        # No network (no CNI), no systemd; rlimits this machine lets a container keep (no
        # CAP_SYS_RESOURCE here: podman's defaults, nofile and nproc raised, fail under plain runc too).
        cat >"$SCRATCH/containers.conf" <<EOF
[containers]
netns = "none"
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "$e/podman-events.log"
tmp_dir = "$e/podman-tmp"
volume_path = "$e/podman-volumes"
runtime = "stockade"
[engine.runtimes]
stockade = ["$SCRATCH/stockade-runc"]
EOF
        on_exit podman_stop
        busybox_root "$SCRATCH/image"
        tar -C "$SCRATCH/image" -c . | podman import -q -c 'CMD ["/bin/sh"]' -c 'ENV PATH=/bin' - localhost/busybox:latest >/dev/null
}
# podman ARGS...: the test's podman (buildah's temporary files in the scratch directory too).
podman() {
        local e=$SCRATCH/engines
        mkdir -p "$e/tmp"
        CONTAINERS_CONF=$SCRATCH/containers.conf TMPDIR=$e/tmp timeout -s KILL 120 \
                nsenter -t "$ENGINE_NS" -m -- \
                /usr/bin/podman --root "$e/podman" --runroot "$e/podman-run" --storage-driver overlay "$@"
}
podman_stop() {
        podman rm -af -t 0 >/dev/null 2>&1
        # conmon outlives podman; it runs in the engines' namespace.
        local pid
        for pid in $(pgrep -x conmon); do
                [[ $(readlink /proc/$pid/ns/mnt) == $(readlink /proc/$ENGINE_NS/ns/mnt) ]] && kill "$pid" 2>/dev/null
        done
}

# ---- containerd ----

CONTAINERD_PID=
containerd_setup() {
        local e=$SCRATCH/engines
        mkdir -p "$e/path"
        cat >"$e/containerd.toml" <<EOF
version = 2
root = "$e/containerd"
state = "$e/containerd-state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "$e/containerd.sock"
[ttrpc]
  address = "$e/containerd.sock.ttrpc"
EOF
        # The drop-in's way: Stockade's "runc" first on containerd's PATH.
        runtime_wrapper "$e/path/runc"
        PATH=$e/path:$PATH nsenter -t "$ENGINE_NS" -m -- \
                containerd --config "$e/containerd.toml" >"$SCRATCH/containerd.log" 2>&1 &
        CONTAINERD_PID=$!
        on_exit containerd_stop
        for _ in $(seq 100); do
                ctr version >/dev/null 2>&1 && break
                sleep 0.1
        done
        ctr version >/dev/null 2>&1 || { echo "FAIL: containerd did not start: $(tail -5 "$SCRATCH/containerd.log")"; exit 1; }
        [[ -d $SCRATCH/image ]] || busybox_root "$SCRATCH/image"
        oci_archive "$SCRATCH/image" "$SCRATCH/busybox-oci.tar"
        ctr images import --base-name localhost/busybox "$SCRATCH/busybox-oci.tar" >/dev/null
}
ctr() { timeout -s KILL 60 /usr/bin/ctr --address "$SCRATCH/engines/containerd.sock" "$@"; }
containerd_stop() {
        [[ -n $CONTAINERD_PID ]] || return 0
        local t
        for t in $(ctr tasks ls -q 2>/dev/null); do ctr tasks kill -s KILL "$t" >/dev/null 2>&1; done
        sleep 0.2
        for t in $(ctr containers ls -q 2>/dev/null); do ctr tasks delete -f "$t" >/dev/null 2>&1; ctr containers delete "$t" >/dev/null 2>&1; done
        kill "$CONTAINERD_PID" 2>/dev/null
        wait "$CONTAINERD_PID" 2>/dev/null
        # The shims run in the engines' namespace.
        local pid
        for pid in $(pgrep -f containerd-shim); do
                [[ $(readlink /proc/$pid/ns/mnt) == $(readlink /proc/$ENGINE_NS/ns/mnt) ]] && kill -9 "$pid" 2>/dev/null
        done
        CONTAINERD_PID=
}

# oci_archive ROOTFS TAR: a one-layer OCI image archive of ROOTFS (tagged "latest").
oci_archive() {
        local dir=$SCRATCH/oci blob
        mkdir -p "$dir/blobs/sha256"
        blob() { # blob FILE: moves FILE into the blobs, prints "DIGEST SIZE"
                local d s
                d=$(sha256sum "$1" | cut -d' ' -f1) s=$(stat -c %s "$1")
                mv "$1" "$dir/blobs/sha256/$d"
                echo "$d $s"
        }
        local diff layer config manifest
        diff=$(tar -C "$1" -c . | sha256sum | cut -d' ' -f1)
        tar -C "$1" -c . | gzip -n >"$dir/layer"
        read -r -a layer <<<"$(blob "$dir/layer")"
        printf '{"architecture":"amd64","os":"linux","config":{"Env":["PATH=/bin"],"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":["sha256:%s"]}}' \
                "$diff" >"$dir/config"
        read -r -a config <<<"$(blob "$dir/config")"
        printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:%s","size":%s},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"sha256:%s","size":%s}]}' \
                "${config[@]}" "${layer[@]}" >"$dir/manifest"
        read -r -a manifest <<<"$(blob "$dir/manifest")"
        printf '{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:%s","size":%s,"annotations":{"org.opencontainers.image.ref.name":"latest"}}]}' \
                "${manifest[@]}" >"$dir/index.json"
        echo '{"imageLayoutVersion":"1.0.0"}' >"$dir/oci-layout"
        tar -C "$dir" -cf "$2" .
}

# ranges: the agent's recorded ranges, "KEY=BASE" sorted, one line.
ranges() {
        python3 -c 'import json,os,sys; d=json.load(open(sys.argv[1])) if os.path.exists(sys.argv[1]) else {}; print(" ".join(sorted("%s=%s" % (k.rsplit("/",1)[-1], v[0] if isinstance(v, list) else v) for k,v in {**d.get("containers",{}), **d.get("mapped",{})}.items())))' \
                "$SCRATCH/state/ranges.json"
}

# joined CMD...: CMD's output (stdout and stderr) on one line, CMD's exit status.
joined() {
        "$@" 2>&1 | tr '\n' ' ' | sed 's/ *$//'
        return "${PIPESTATUS[0]}"
}
