# Sourced: quote ARG... prints the arguments as one shell command line that gives them
# back unchanged: plain words as they are, anything else in single quotes.
quote() {
        local arg line=
        for arg in "$@"; do
                if [[ $arg =~ ^[A-Za-z0-9_@%+=:,./-]+$ ]]; then
                        line+=" $arg"
                else
                        line+=" '${arg//\'/\'\\\'\'}'"
                fi
        done
        printf '%s\n' "${line# }"
}
