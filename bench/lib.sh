# Helpers shared by the benchmarks (sourced by run.sh and plugin.sh).
# Uses: DROP_CACHES, TIME, LOGS, GEN; appends to RESULTS.

log() { printf '%s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Drop the page cache so every timed command starts cold (needs root; silently skipped otherwise).
CACHES_DROPPED=unknown
drop_caches() {
    [[ $DROP_CACHES == 1 ]] || { CACHES_DROPPED=no; return 0; }
    sync
    if { echo 3 >/proc/sys/vm/drop_caches; } 2>/dev/null; then
        CACHES_DROPPED=yes
    else
        CACHES_DROPPED=no
    fi
}

# CPU seconds (user + sys) the process SERVER_PID has used so far.
server_cpu() {
    awk -v hz="$(getconf CLK_TCK)" '{printf "%.2f", ($14 + $15) / hz}' "/proc/$SERVER_PID/stat"
}

# timed CASE TOOL -- CMD...   run CMD under /usr/bin/time, output to logs/CASE-TOOL.log,
# and append "CASE TOOL wall user sys rss" to RESULTS (plus the CPU seconds the server
# SERVER_PID spent meanwhile, when set). Aborts the run if CMD fails.
timed() {
    local case=$1 tool=$2
    shift 2
    [[ ${1:-} == -- ]] && shift
    local logf="$LOGS/$case-$tool.log" timef="$LOGS/$case-$tool.time"
    printf '$ %s\n' "$*" >"$logf"
    drop_caches
    local srv_before=
    [[ -z ${SERVER_PID:-} ]] || srv_before=$(server_cpu)
    if ! "$TIME" -f '%e %U %S %M' -o "$timef" "$@" >>"$logf" 2>&1; then
        log "FAILED: case $case, $tool: $*"
        log "---- last lines of $logf:"
        tail -n 30 "$logf" >&2
        exit 1
    fi
    local wall user sys rss
    read -r wall user sys rss < <(tail -n 1 "$timef")
    local srv=
    [[ -z ${SERVER_PID:-} ]] || srv=" $(echo "$(server_cpu) $srv_before" | awk '{printf "%.2f", $1 - $2}')"
    RESULTS+=("$case $tool $wall $user $sys $rss$srv")
    printf '  %-3s %-7s wall %8.2f s   cpu %8.2f s   max RSS %7.1f MiB\n' \
        "$case" "$tool" "$wall" "$(echo "$user $sys" | awk '{print $1 + $2}')" \
        "$(echo "$rss" | awk '{print $1 / 1024}')" >&2
}

# ensure_dataset DIR GEN-ARGS...   generate into DIR unless a finished copy with the same
# parameters (and the same generator) is already there.
ensure_dataset() {
    local dir=$1
    shift
    local stamp="$dir.stamp" want
    want="$(printf '%s ' "$@") gen=$(sha256sum "$GEN" | cut -c1-16)"
    if [[ -d $dir && -f $stamp && $(cat "$stamp") == "$want" ]]; then
        log "dataset $(basename "$dir"): reusing"
        return 0
    fi
    log "dataset $(basename "$dir"): generating ($*)"
    rm -rf "$dir" "$stamp"
    python3 "$GEN" "${@:1:1}" "$dir" "${@:2}" >&2
    printf '%s' "$want" >"$stamp"
}

# The restored copy of SRC inside TARGET: TARGET/SRC (restic keeps absolute paths),
# else TARGET/basename(SRC), else TARGET itself.
restored_root() {
    local target=$1 src=$2
    if [[ -d $target$src ]]; then
        printf '%s' "$target$src"
    elif [[ -d $target/$(basename "$src") ]]; then
        printf '%s' "$target/$(basename "$src")"
    else
        printf '%s' "$target"
    fi
}

verify_restore() {   # verify_restore TOOL TARGET SRC
    local tool=$1 target=$2 src=$3 got
    got=$(restored_root "$target" "$src")
    log "  verifying $tool restore: diff -r $src $got"
    if ! diff -r -q --no-dereference "$src" "$got" >"$LOGS/verify-$tool.log" 2>&1; then
        log "---- $(wc -l <"$LOGS/verify-$tool.log") differences, first lines:"
        head -n 20 "$LOGS/verify-$tool.log" >&2
        die "RESTORE MISMATCH: $tool restore in $got differs from $src"
    fi
    log "  $tool restore: identical"
}
