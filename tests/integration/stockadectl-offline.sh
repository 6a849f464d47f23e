#!/usr/bin/env bash
# stockadectl's offline tools end to end: keys, roots, signing, verification, state.
. "$(dirname "$0")/lib.sh"
ctl=$STOCKADE_BIN/stockadectl
settings=$STOCKADE_TOP/tests/data/admin-settings.json
cd "$SCRATCH"

id=$($ctl keygen --out a) && $ctl keygen --type p256 --out b >/dev/null && $ctl keygen --out c >/dev/null
if [[ $id =~ ^[0-9a-f]{64}$ && $(stat -c %a a.key) == 600 && $(stat -c %a a.pub) == 644 ]] &&
   grep -q 'BEGIN PRIVATE KEY' a.key && grep -q 'BEGIN PUBLIC KEY' b.pub &&
   [[ $id == $(openssl pkey -pubin -in a.pub -outform DER | sha256sum | cut -d' ' -f1) ]]; then
        pass "keygen writes PKCS#8/SPKI PEM files and prints the SHA-256 key id"
else
        fail "keygen writes PKCS#8/SPKI PEM files and prints the SHA-256 key id"
fi
expect "keygen refuses to overwrite" 1 "cannot create 'a.key'" $ctl keygen --out a
expect "keygen unknown type is a usage error" 2 "unknown key type 'rsa'" $ctl keygen --type rsa --out x

$ctl root init --threshold 2 --key a.pub --key b.pub --sign a.key --sign b.key >root1.json
$ctl sign --key a.key --key b.key --org acme --serial 1 --valid-for 30d "$settings" >bundle1.json
if $ctl verify --root root1.json --org acme bundle1.json >effective.json &&
   python3 -c '
import json, sys
s = json.load(open("effective.json"))["settings"]
assert s["enhancedContainerIsolation"] == {"value": True, "source": "admin-locked"}, s["enhancedContainerIsolation"]
assert s["containersProxy.mode"] == {"value": "system", "source": "admin-default"}
assert s["allowBetaFeatures"]["source"] == "builtin"'; then
        pass "verify prints effective settings with their sources"
else
        fail "verify prints effective settings with their sources"
fi

python3 - <<'PY'
import base64, json
e = json.load(open("bundle1.json"))
p = bytearray(base64.b64decode(e["payload"]))
p[p.index(b'"acme"') + 1] ^= 0x20
e["payload"] = base64.b64encode(bytes(p)).decode()
json.dump(e, open("tampered.json", "w"))
e = json.load(open("bundle1.json")); e["signatures"] = e["signatures"][:1]
json.dump(e, open("one-sig.json", "w"))
e["signatures"] = e["signatures"] * 2
json.dump(e, open("dup-sig.json", "w"))
PY
expect "tampered payload rejected" 1 '^stockadectl: rejected: signature threshold not met: 0 valid signatures from trusted keys, 2 required$' \
        $ctl verify --root root1.json tampered.json
expect "below threshold rejected" 1 'rejected: signature threshold not met: 1 valid signature from trusted keys, 2 required' \
        $ctl verify --root root1.json one-sig.json
expect "same key twice counts once" 1 'rejected: signature threshold not met: 1 valid signature' \
        $ctl verify --root root1.json dup-sig.json
expect "wrong org rejected" 1 "rejected: bundle is for org 'acme', expected 'other'" \
        $ctl verify --root root1.json --org other bundle1.json
head -c 1100000 /dev/zero | tr '\0' ' ' >big.json
expect "oversize bundle rejected" 1 'rejected: too large: 1100000 bytes \(limit 1048576\)' $ctl verify --root root1.json big.json
echo '{"payload": "!!", "payloadType": "x", "signatures": [{"keyid": "k", "sig": "AA=="}]}' >b64.json
expect "malformed base64 rejected" 1 "rejected: malformed envelope: 'payload' is not valid base64" $ctl verify --root root1.json b64.json

expect "verify --commit records last-known-good" 0 '"serial":\s*1' \
        $ctl verify --root root1.json --state-dir state --commit bundle1.json
if [[ -f state/last-known-good.json && -f state/root.json && -f state/state.json ]] && cmp -s state/last-known-good.json bundle1.json; then
        pass "state directory holds the exact bundle bytes"
else
        fail "state directory holds the exact bundle bytes"
fi
expect "same serial, same bytes is accepted" 0 '"serial":\s*1' $ctl verify --root root1.json --state-dir state bundle1.json
$ctl sign --key a.key --key b.key --org acme --serial 1 --valid-for 31d "$settings" >bundle1b.json
expect "same serial, different bytes rejected" 1 'rejected: serial 1 was already accepted with different content' \
        $ctl verify --root root1.json --state-dir state bundle1b.json
$ctl sign --key a.key --key b.key --org acme --serial 3 --valid-for 30d "$settings" >bundle3.json
$ctl verify --root root1.json --state-dir state --commit bundle3.json >/dev/null
$ctl sign --key a.key --key b.key --org acme --serial 2 --valid-for 30d "$settings" >bundle2.json
expect "rollback rejected" 1 'rejected: rollback: serial 2 is older than the accepted serial 3' \
        $ctl verify --root root1.json --state-dir state bundle2.json
$ctl sign --key a.key --key b.key --org evil --serial 9 --valid-for 30d "$settings" >evil.json
expect "committed org sticks" 1 "rejected: bundle is for org 'evil', expected 'acme'" \
        $ctl verify --root root1.json --state-dir state evil.json

# Root rotation: 2 is signed by version 1's keys and its own; 3 without 2 skips.
$ctl root init --version 2 --threshold 1 --key c.pub --sign a.key --sign b.key --sign c.key >root2.json
$ctl root init --version 2 --threshold 1 --key c.pub --sign c.key >root2-unsigned.json
$ctl root init --version 3 --threshold 1 --key c.pub --sign c.key >root3.json
$ctl sign --key c.key --org acme --serial 4 --valid-for 30d "$settings" >bundle4.json
expect "rotation without the old keys refused" 1 "rejected: root version 2 is not signed by version 1's keys" \
        $ctl verify --root root2-unsigned.json --state-dir state bundle4.json
expect "rotation skipping a version refused" 1 'rejected: root version 3 skips version 2' \
        $ctl verify --root root3.json --state-dir state bundle4.json
expect "rotation to version 2 accepted" 0 '"serial":\s*4' $ctl verify --root root2.json --state-dir state --commit bundle4.json
expect "old root refused after rotation" 1 'rejected: root version 1 is older than the trusted version 2' \
        $ctl verify --root root1.json --state-dir state bundle4.json

echo '{"analyticsEnabled": true, "kubernetes.enabled": true}' >user.json
out=$($ctl settings show --state-dir state --user-settings user.json)
if grep -qE '^policy: org acme, serial 4' <<<"$out" &&
   grep -qE '^analyticsEnabled +admin-locked +false$' <<<"$out" &&
   grep -qE '^kubernetes.enabled +user +true$' <<<"$out" &&
   grep -qE '^disableUpdate +admin-default +false$' <<<"$out" &&
   grep -qE '^allowBetaFeatures +builtin +false$' <<<"$out"; then
        pass "settings show lists each setting with its source"
else
        fail "settings show lists each setting with its source" "$out"
fi
expect "settings show --json" 0 '"source":\s*"user"' $ctl settings show --state-dir state --user-settings user.json --json
expect "settings show with no state shows built-in defaults" 0 'policy: none accepted' $ctl settings show --state-dir empty
cp bundle1.json state/last-known-good.json
expect "settings show reports a mismatched state" 1 'state: last-known-good.json does not match state.json' \
        $ctl settings show --state-dir state

echo '{"configurationFileVersion": 2, "proxy": {"locked": true, "windowsDockerdPort": "x"}}' >bad-settings.json
expect "sign refuses invalid settings naming the key" 1 'invalid settings .*: proxy.windowsDockerdPort: expected integer' \
        $ctl sign --key a.key --org acme --serial 1 --valid-for 1d bad-settings.json
expect "sign needs an expiry" 2 'exactly one of --expires and --valid-for' $ctl sign --key a.key --org acme --serial 1 "$settings"
expect "sign refuses a past expiry" 1 'expires is in the past' \
        $ctl sign --key a.key --org acme --serial 1 --expires 2020-01-01T00:00:00Z "$settings"
for cmd in keygen "root init" sign verify "settings show"; do
        expect "$cmd --help" 0 '^usage: stockadectl' $ctl $cmd --help
done
expect "unknown command is a usage error" 2 "unknown command 'frobnicate'" $ctl frobnicate
