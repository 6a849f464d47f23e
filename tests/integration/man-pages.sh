#!/usr/bin/env bash
# The man pages against the binaries: every stockadectl command and option its --help
# lists is in stockadectl(1), every option of stockaded and stockade-runc in their pages,
# and `man -l` renders each page without a warning. (The configuration keys are checked
# against stockaded.json(5) by test-config, which asks the parser itself.)
. "$(dirname "$0")/lib.sh"
man_dir=$STOCKADE_BIN/../man
pages=(stockaded.8 stockade-runc.8 stockadectl.1 stockaded.json.5 stockade-settings.7)
command -v man >/dev/null || { echo "FAIL: man is missing (make deps installs man-db)"; exit 1; }

# check_page NAME SOURCE WORD...: each WORD occurs in the page's source.
check_words() {
        local name=$1 page=$STOCKADE_TOP/docs/man/$2.scd missing=(); shift 2
        for word in "$@"; do
                grep -qF -- "$word" "$page" || missing+=("'$word'")
        done
        if [[ ${#missing[@]} -eq 0 ]]; then pass "$name"; else fail "$name" "docs/man/$(basename "$page") lacks ${missing[*]}"; fi
}

# The commands are the entries of stockadectl.c's command table; each one's usage line
# (`stockadectl CMD --help`) gives its words ("root init") and options.
commands=() usages=
for name in $(sed -nE 's/^ *\{ "([a-z-]+)", "[a-z].*/\1/p' "$STOCKADE_TOP/agent/stockadectl.c"); do
        usage=$("$STOCKADE_BIN/stockadectl" "$name" --help | head -n 1)
        read -r _ _ first second _ <<<"$usage"
        [[ $first == "$name" ]] || { fail "stockadectl $name --help prints its usage" "$usage"; continue; }
        [[ $second =~ ^[a-z]+$ ]] && first="$first $second"
        commands+=("*stockadectl $first*")
        usages+=$usage$'\n'
done
[[ ${#commands[@]} -ge 11 ]] || fail "agent/stockadectl.c's command table is found" "found ${#commands[@]}"
check_words "stockadectl(1) describes every command of agent/stockadectl.c (${#commands[@]})" stockadectl.1 "${commands[@]}"
help=$usages$("$STOCKADE_BIN/stockadectl" --help)
mapfile -t options < <(grep -oE -- '--[a-z][a-z-]*' <<<"$help" | sort -u)
check_words "stockadectl(1) names every option of stockadectl's usage lines (${#options[@]})" stockadectl.1 "${options[@]/#/*}"

mapfile -t options < <("$STOCKADE_BIN/stockaded" --help | grep -oE -- '--[a-z][a-z-]*' | sort -u)
check_words "stockaded(8) names every option of stockaded --help (${#options[@]})" stockaded.8 "${options[@]/#/*}"
check_words "stockade-runc(8) names its own option" stockade-runc.8 "*--stockade-config*"

for page in "${pages[@]}"; do
        if [[ ! -f $man_dir/$page ]]; then
                fail "man -l $page" "$man_dir/$page was not built"
                continue
        fi
        out=$(MANWIDTH=80 man --warnings -l "$man_dir/$page" 2>"$SCRATCH/warnings")
        if [[ -s $SCRATCH/warnings ]]; then
                fail "man -l $page renders without warnings" "$(head -c 600 "$SCRATCH/warnings")"
        elif ! grep -q "^NAME" <<<"$out" || ! grep -q "^SEE ALSO" <<<"$out"; then
                fail "man -l $page renders without warnings" "no NAME or SEE ALSO section: $(head -c 300 <<<"$out")"
        else
                pass "man -l $page renders without warnings ($(wc -l <<<"$out") lines)"
        fi
done
