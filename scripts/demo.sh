#!/usr/bin/env bash
# make demo: a walk-through of Stockade in a scratch directory, cleaned up at the end.
set -euo pipefail
bin=$(cd "${1:-build/bin}" && pwd)
top=$(cd "$(dirname "$0")/.." && pwd)
ctl=$bin/stockadectl
work=$(mktemp -d /tmp/stockade-demo.XXXXXX)
trap 'rm -rf "$work"' EXIT
cd "$work"

step() { printf '\n== %s\n' "$*"; }
show() { printf '$ %s\n' "${*##*/}" >&2; "$@"; }

step "An administrator creates two signing keys (Ed25519 and ECDSA P-256)"
show "$ctl" keygen --out admin1
show "$ctl" keygen --type p256 --out admin2

step "A trust root that needs both keys to sign any settings bundle"
"$ctl" root init --threshold 2 --key admin1.pub --key admin2.pub --sign admin1.key --sign admin2.key >root.json
echo "root.json: $(wc -c <root.json) bytes"

step "Signing admin-settings.json (ECI enabled and locked) as bundle serial 1"
show "$ctl" sign --key admin1.key --key admin2.key --org acme --serial 1 --valid-for 30d \
        "$top/tests/data/admin-settings.json" >bundle.json
echo "bundle.json: $(wc -c <bundle.json) bytes"

step "Verifying and recording it as the last-known-good settings"
show "$ctl" verify --root root.json --org acme --state-dir state --commit bundle.json | head -n 16
echo "  ..."

step "A tampered copy (one byte of the payload changed) is rejected"
python3 -c '
import base64, json
e = json.load(open("bundle.json"))
p = bytearray(base64.b64decode(e["payload"]))
p[p.index(b"\"value\":true")+8] ^= 0x01
e["payload"] = base64.b64encode(bytes(p)).decode()
json.dump(e, open("tampered.json", "w"))'
show "$ctl" verify --root root.json --org acme tampered.json || echo "(exit status $?)"

step "Serial 2 replaces it; replaying serial 1 is refused: settings cannot be rolled back"
"$ctl" sign --key admin1.key --key admin2.key --org acme --serial 2 --valid-for 30d \
        "$top/tests/data/admin-settings.json" >bundle2.json
show "$ctl" verify --root root.json --state-dir state --commit bundle2.json >/dev/null
show "$ctl" verify --root root.json --state-dir state bundle.json || echo "(exit status $?)"

step "Effective settings: locked admin values win over the user's own choices"
echo '{"analyticsEnabled": true, "kubernetes.enabled": true}' >user-settings.json
show cat user-settings.json
show "$ctl" settings show --state-dir state --user-settings user-settings.json
