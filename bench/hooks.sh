#!/usr/bin/env bash
# Hooks and discovery: what an app's dump costs when a hook streams it into the backup,
# against the same bytes piped into `backup --stdin` of cairn and of restic, side by side in
# one run; and how long `cairn discover` takes on a node with many pods.
#
#   bench/hooks.sh            a 1 GiB export, a node of 2,000 pods × 4 volumes
#   bench/hooks.sh --quick    a 64 MiB export, 200 pods
#
# The export is a random file served by `python3 -m http.server` on 127.0.0.1.
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

MODE=full SIZE=1G PODS=2000
case ${1:-} in
    --quick) MODE=quick SIZE=64M PODS=200 ;;
    "") ;;
    *) sed -n '2,10p' "${BASH_SOURCE[0]}" >&2; die "unknown argument: $1" ;;
esac
[[ -x $TIME ]] || die "GNU time is required (apt-get install -y time)"
command -v restic >/dev/null || die "restic is required (apt-get install -y restic)"

log "building: cairn and the plugins"
(cd "$ROOT" && cargo build --release -p cairn-cli) >&2
(cd "$ROOT/plugins" && cargo build --release --target wasm32-wasip2 --target-dir "$ROOT/target/wasm") >&2
CAIRN_BIN="$ROOT/target/release/cairn"
WASM="$ROOT/target/wasm/wasm32-wasip2/release"

H="$WORK/hooks"
DATA="$WORK/data" LOGS="$H/logs" REPOS="$H/repos" NODE="$H/node"
rm -rf "$H"
mkdir -p "$DATA" "$LOGS" "$REPOS" "$NODE"
export CAIRN_PASSWORD=bench RESTIC_PASSWORD=bench XDG_CACHE_HOME="$H/cache"
export CAIRN_PLUGIN_DIR="$H/store" CAIRN_HOST_ROOT="$NODE"
unset CAIRN_REPOSITORY CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND RESTIC_REPOSITORY 2>/dev/null || true

EXPORT_DIR="$DATA/export-$SIZE"
ensure_dataset "$EXPORT_DIR" big --size "$SIZE"
EXPORT=$(find "$EXPORT_DIR" -type f | head -n 1)
PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$(dirname "$EXPORT")" >"$LOGS/http.log" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
URL="http://127.0.0.1:$PORT/$(basename "$EXPORT")"
for _ in $(seq 50); do curl -sfI "$URL" >/dev/null && break; sleep 0.1; done

for p in kubelet http-dump; do
    "$CAIRN_BIN" plugin install "$WASM/cairn_plugin_${p//-/_}.wasm" --manifest "$ROOT/plugins/$p/plugin.toml" >&2
done
# (f) runs the app alone; (g) discovery alone.
cat >"$H/app.toml" <<TOML
[apps.dump]
[[apps.dump.hooks]]
plugin = "http-dump"
config = { url = "$URL", file = "export.bin" }
grant = { http = ["127.0.0.1:$PORT"], wall-ms = 3600000, cpu-ms = 600000 }
TOML
cat >"$H/node.toml" <<TOML
[plugins.kubelet.grant]
dirs = [{ path = "$NODE" }]
TOML

log "node: $PODS pods × 4 volumes (csi, empty-dir, nfs, configmap) under /var/lib/kubelet"
python3 - "$NODE" "$PODS" <<'PY'
import json, os, sys, uuid
node, pods = sys.argv[1], int(sys.argv[2])
for i in range(pods):
    uid = str(uuid.UUID(int=i + 1))
    pod = f"{node}/var/lib/kubelet/pods/{uid}"
    for plugin, name in [("kubernetes.io~csi", f"pvc-{i:05d}"), ("kubernetes.io~empty-dir", "cache"),
                         ("kubernetes.io~nfs", f"pv-nfs-{i:05d}"), ("kubernetes.io~configmap", "config")]:
        d = f"{pod}/volumes/{plugin}/{name}"
        os.makedirs(d + ("/mount" if plugin.endswith("csi") else ""), exist_ok=True)
        if plugin.endswith("csi"):
            json.dump({"specVolID": name, "volumeHandle": f"vol-{i}", "driverName": "x.csi",
                       "volumeLifecycleMode": "Persistent"}, open(d + "/vol_data.json", "w"))
    os.makedirs(f"{node}/var/log/pods/ns{i % 50}_app{i}-7d4b9c8f6d-x2x9k_{uid}/app", exist_ok=True)
PY

"$CAIRN_BIN" -r "$REPOS/cairn" init --quiet
"$CAIRN_BIN" -r "$REPOS/cairn-stdin" init --quiet
restic -r "$REPOS/restic" init >/dev/null

log "(f) the export streamed into the backup: http-dump hook vs curl | backup --stdin"
timed f cairn-hook -- "$CAIRN_BIN" --config "$H/app.toml" -r "$REPOS/cairn" backup --quiet --for-app dump
timed f cairn-stdin -- sh -c "curl -sf '$URL' | '$CAIRN_BIN' -r '$REPOS/cairn-stdin' backup --quiet --stdin --stdin-filename export.bin"
timed f restic -- sh -c "curl -sf '$URL' | restic -r '$REPOS/restic' backup --quiet --stdin --stdin-filename export.bin"
log "(g) cairn discover on $PODS pods (cold, then warm cache)"
timed g cairn-cold -- "$CAIRN_BIN" --config "$H/node.toml" discover --json
DROP_CACHES=0 timed g cairn-warm -- "$CAIRN_BIN" --config "$H/node.toml" discover --json
"$CAIRN_BIN" --config "$H/node.toml" discover --json >"$LOGS/targets.json"

printf '%s\n' "${RESULTS[@]}" >"$H/results.tsv"
python3 - "$H/results.tsv" "$MODE" "$(nproc)" "$SIZE" "$PODS" "$LOGS/targets.json" <<'PY' | tee "$H/results.md"
import json, sys
tsv, mode, nproc, size, pods, targets = sys.argv[1:]
res = {}
for line in open(tsv):
    case, tool, wall, user, sys_, rss = line.split()
    res[case, tool] = (float(wall), float(user) + float(sys_), int(rss) / 1024)
print(f"# cairn: hooks and discovery ({mode}, {nproc} cores)\n")
print(f"| (f) a {size} export into the backup | wall s | CPU s | max RSS MiB | restic wall / this |")
print("|---|---:|---:|---:|---:|")
r = res["f", "restic"][0]
for tool, title in [("cairn-hook", "cairn, http-dump hook through the sink"),
                    ("cairn-stdin", "cairn, curl \\| backup --stdin"),
                    ("restic", "restic, curl \\| backup --stdin")]:
    w, c, m = res["f", tool]
    print(f"| {title} | {w:.2f} | {c:.2f} | {m:.0f} | {r / w:.2f}× |")
n = len(json.load(open(targets)))
print()
for tool in ["cairn-cold", "cairn-warm"]:
    w, c, m = res["g", tool]
    print(f"(g) `cairn discover` ({tool.split('-')[1]} page cache): {n} targets from {pods} pods in {w:.2f} s "
          f"({w / int(pods) * 1000:.2f} ms per pod), {m:.0f} MiB")
PY
