#!/usr/bin/env bash
# make demo prints each command it runs through scripts/quote.sh: a printed line, pasted
# into a shell, must give back exactly the arguments that were run.
. "$(dirname "$0")/lib.sh"
. "$STOCKADE_TOP/scripts/quote.sh"

check() {
        local name=$1; shift
        local line i ok=1
        local -a want=("$@") back=()
        line=$(quote "$@")
        eval "back=($line)"
        [[ ${#back[@]} -eq ${#want[@]} ]] || ok=0
        for ((i = 0; i < ${#want[@]}; i++)); do
                [[ ${back[i]-} == "${want[i]}" ]] || ok=0
        done
        if [[ $ok -eq 1 ]]; then pass "$name: ${line//$'\n'/\\n}"; else fail "$name" "printed '$line', which gives back $(declare -p back)"; fi
}

check "plain words stay plain" stockadectl verify --root root.json --org acme bundle.json
check "a script with spaces, ; and >" docker run --rm stockade-test sh -c 'cat /proc/self/uid_map; echo x >/proc/sys/kernel/core_pattern'
check "quotes, \$, backslashes and newlines" sh -c 'mkdir -p /mnt && echo "it'\''s $HOME \\n"
umount /proc || echo "refused"'
check "empty and glob arguments" printf '%s\n' '' '*' '~' '{a,b}' 'a b'
