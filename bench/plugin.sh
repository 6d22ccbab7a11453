#!/usr/bin/env bash
# The cost of the plugin boundary: backup and restore of the same data through the native
# local backend and through the `dir` storage plugin, side by side in one run, and plugin
# start-up time (a warm instance; a cold process loading from the compiled cache).
#
#   bench/plugin.sh            2 GiB random file, 50,000 files / 1 GiB
#   bench/plugin.sh --quick    128 MiB file, 3,000 files / 60 MiB
#
# Environment: BENCH_WORK (default bench/work), BENCH_DROP_CACHES (default 1).
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$BENCH_DIR")
WORK=${BENCH_WORK:-$BENCH_DIR/work}
GEN="$BENCH_DIR/gen_dataset.py"
DROP_CACHES=${BENCH_DROP_CACHES:-1}
TIME=/usr/bin/time
RESULTS=()
# shellcheck source=bench/lib.sh
source "$BENCH_DIR/lib.sh"

MODE=full BIG_SIZE=2G SMALL_COUNT=50000 SMALL_TOTAL=1G
case ${1:-} in
    --quick) MODE=quick BIG_SIZE=128M SMALL_COUNT=3000 SMALL_TOTAL=60M ;;
    "") ;;
    *) sed -n '2,10p' "${BASH_SOURCE[0]}" >&2; die "unknown argument: $1" ;;
esac
[[ -x $TIME ]] || die "GNU time is required (apt-get install -y time)"

log "building: cairn, the start-up probe, the dir plugin"
(cd "$ROOT" && cargo build --release -p cairn-cli && cargo build --release -p cairn-plugin-host --example instantiate) >&2
(cd "$ROOT/plugins" && cargo build --release --target wasm32-wasip2 --target-dir "$ROOT/target/wasm") >&2
CAIRN_BIN="$ROOT/target/release/cairn"
PROBE="$ROOT/target/release/examples/instantiate"
DIR_WASM="$ROOT/target/wasm/wasm32-wasip2/release/cairn_plugin_dir.wasm"

DATA="$WORK/data" LOGS="$WORK/plugin/logs" REPOS="$WORK/plugin/repos" RESTORES="$WORK/plugin/restore"
rm -rf "$WORK/plugin"
mkdir -p "$DATA" "$LOGS" "$REPOS" "$RESTORES"
export CAIRN_PASSWORD=bench XDG_CACHE_HOME="$WORK/plugin/cache" CAIRN_PLUGIN_DIR="$WORK/plugin/store"
export CAIRN_CONFIG="$WORK/plugin/cairn.toml"
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND 2>/dev/null || true
cat >"$CAIRN_CONFIG" <<TOML
[plugins.bench]
plugin = "dir"
[plugins.bench.config]
path = "$REPOS/plugin"
[plugins.bench.grant]
dirs = [{ path = "$REPOS", access = "read-write" }]
TOML
"$CAIRN_BIN" plugin install "$DIR_WASM" --manifest "$ROOT/plugins/dir/plugin.toml" >&2

BIG_DIR="$DATA/big-$BIG_SIZE"
SMALL_DIR="$DATA/small-$SMALL_COUNT-$SMALL_TOTAL"
ensure_dataset "$BIG_DIR" big --size "$BIG_SIZE"
ensure_dataset "$SMALL_DIR" small --count "$SMALL_COUNT" --total "$SMALL_TOTAL"

repo_of() { case $1 in native) echo "$REPOS/native" ;; plugin) echo "plugin:bench" ;; esac; }
for way in native plugin; do
    "$CAIRN_BIN" -r "$(repo_of $way)" init --quiet
done
log "(a) backup of one random $BIG_SIZE file"
for way in native plugin; do timed a "$way" -- "$CAIRN_BIN" -r "$(repo_of $way)" backup --quiet "$BIG_DIR"; done
log "(b) backup of $SMALL_COUNT files / $SMALL_TOTAL"
for way in native plugin; do timed b "$way" -- "$CAIRN_BIN" -r "$(repo_of $way)" backup --quiet "$SMALL_DIR"; done
log "(e) restore of (b)"
for way in native plugin; do
    timed e "$way" -- "$CAIRN_BIN" -r "$(repo_of $way)" restore latest --path "$SMALL_DIR" --target "$RESTORES/$way" --quiet
    verify_restore "$way" "$RESTORES/$way" "$SMALL_DIR"
done

log "plugin start-up: 7 cold processes (compiled cache warm), 200 warm instances each"
"$PROBE" "$DIR_WASM" "$ROOT/plugins/dir/plugin.toml" "$WORK/plugin/cache/probe" "$REPOS/probe" >/dev/null  # fills the cache
STARTUP="$LOGS/startup.txt"
for _ in 1 2 3 4 5 6 7; do
    "$PROBE" "$DIR_WASM" "$ROOT/plugins/dir/plugin.toml" "$WORK/plugin/cache/probe" "$REPOS/probe"
done >"$STARTUP"

printf '%s\n' "${RESULTS[@]}" >"$WORK/plugin/results.tsv"
python3 - "$WORK/plugin/results.tsv" "$STARTUP" "$MODE" "$(nproc)" <<'PY' | tee "$WORK/plugin/results.md"
import statistics, sys
tsv, startup, mode, nproc = sys.argv[1:]
res = {}
for line in open(tsv):
    case, way, wall, user, sys_, rss = line.split()
    res[case, way] = (float(wall), float(user) + float(sys_), int(rss) / 1024)
print(f"# cairn: native local backend vs the dir plugin ({mode}, {nproc} cores)\n")
print("| case | native wall s | plugin wall s | plugin throughput / native | native CPU s | plugin CPU s | native RSS MiB | plugin RSS MiB |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
titles = {"a": "backup, one big random file", "b": "backup, small files", "e": "restore of (b)"}
for case in "abe":
    n, p = res[case, "native"], res[case, "plugin"]
    print(f"| ({case}) {titles[case]} | {n[0]:.2f} | {p[0]:.2f} | {n[0] / p[0]:.0%} | {n[1]:.2f} | {p[1]:.2f} | {n[2]:.0f} | {p[2]:.0f} |")
cold = [float(l.split()[1]) for l in open(startup) if l.startswith("cold")]
warm = [float(l.split()[1]) for l in open(startup) if l.startswith("warm")]
print()
print(f"Plugin start-up (dir plugin): warm instance {statistics.median(warm):.3f} ms (median of 7 × 200; goal < 1 ms); "
      f"cold process with the compiled cache {statistics.median(cold):.1f} ms (median of 7; goal < 50 ms).")
print("Goal: plugin throughput ≥ 90 % of native.")
PY
