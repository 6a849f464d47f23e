# Sourced by integration scripts: result lines and a scratch directory removed on exit.
set -uo pipefail

: "${STOCKADE_BIN:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build/bin}"
: "${STOCKADE_TOP:=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}"
SCRATCH=$(mktemp -d /tmp/stockade-it.XXXXXX)
cleanup_hooks=()
run_cleanup() {
        set +e # every hook runs, whatever the one before it returned
        local i
        for ((i = ${#cleanup_hooks[@]} - 1; i >= 0; i--)); do eval "${cleanup_hooks[i]}"; done
        rm -rf "$SCRATCH"
}
trap run_cleanup EXIT
on_exit() { cleanup_hooks+=("$1"); }

pass() { echo "PASS: $1"; }
fail() { echo "FAIL: $1${2:+: $2}"; }
skip() { echo "SKIP: $1"; }

# expect NAME STATUS PATTERN CMD...: CMD must exit with STATUS and print (stdout+stderr)
# something matching the extended regex PATTERN.
expect() {
        local name=$1 status=$2 pattern=$3; shift 3
        local out rc
        out=$("$@" 2>&1); rc=$?
        if [[ $rc -ne $status ]]; then
                fail "$name" "exit status $rc, expected $status; output: $(head -c 600 <<<"$out")"
        elif ! grep -qE -- "$pattern" <<<"$out"; then
                fail "$name" "output does not match '$pattern': $(head -c 600 <<<"$out")"
        else
                pass "$name"
        fi
}

# mount_ns_holder: starts a sleeper in a private mount namespace of its own ($HOLDER, stopped on
# exit): what is mounted in it (nsenter -t "$HOLDER" -m) vanishes with it.
mount_ns_holder() {
        unshare -m --propagation private sleep infinity &
        HOLDER=$!
        on_exit "kill $HOLDER 2>/dev/null; wait $HOLDER 2>/dev/null"
        for _ in $(seq 100); do # until unshare has moved the holder into its own namespace
                [[ $(readlink /proc/$HOLDER/ns/mnt) != $(readlink /proc/self/ns/mnt) ]] && break
                sleep 0.02
        done
}

# make_test_ca: a CA of the test's own (ca.pem) and a server certificate it signed for
# 127.0.0.1 and localhost (server.pem, server.key), in the current directory.
make_test_ca() {
        openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=test-ca \
                -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=127.0.0.1 \
                -keyout server.key -out server.csr 2>/dev/null
        printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >san.ext
        openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile san.ext -out server.pem 2>/dev/null
}
