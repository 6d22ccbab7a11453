#!/usr/bin/env bash
# The agent's overhead. One cycle of 50 apps with small volumes (each its own repository,
# concurrency 1), all triggered at once, against the same 50 backups run one after the other
# by the CLI (`cairn --config FILE backup --for-app NAME`), side by side in one run; then the
# idle agent's RSS and CPU over 10 minutes.
#
#   bench/agent.sh            50 apps of 300 files / 3 MiB each, 10 minutes idle
#   bench/agent.sh --quick    20 apps, 60 s idle
#
# Goals: the cycle within 10 % of the CLI's sequential time; idle RSS < 30 MiB and CPU
# < 0.1 % of a core. Environment: BENCH_WORK (default bench/work), BENCH_DROP_CACHES
# (default 1).
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

MODE=full APPS=50 IDLE=600
case ${1:-} in
    --quick) MODE=quick APPS=20 IDLE=60 ;;
    "") ;;
    *) sed -n '2,12p' "${BASH_SOURCE[0]}" >&2; die "unknown argument: $1" ;;
esac

log "building cairn (release)"
(cd "$ROOT" && cargo build --release -p cairn-cli) >&2
CAIRN_BIN="$ROOT/target/release/cairn"

B="$WORK/agent"
DATA="$WORK/data" LOGS="$B/logs"
rm -rf "$B"
mkdir -p "$DATA" "$LOGS" "$B/volumes"
export XDG_CACHE_HOME="$B/cache"
unset CAIRN_REPOSITORY CAIRN_PASSWORD CAIRN_PASSWORD_FILE CAIRN_PASSWORD_COMMAND 2>/dev/null || true

SMALL_DIR="$DATA/small-300-3M"
ensure_dataset "$SMALL_DIR" small --count 300 --total 3M
printf 'bench\n' >"$B/password"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# One configuration for both: each app has its own volume and repository, so the agent and
# the CLI do exactly the same backups (the CLI's repositories are other directories).
write_config() { # FILE REPOS-DIR
    local file=$1 repos=$2 port
    port=$(free_port)
    {
        printf '[agent]\nstate = "%s"\nlisten = "127.0.0.1:%s"\nconcurrency = 1\n' "$B/state" "$port"
        printf 'password-file = "%s"\ncache-dir = "%s"\n\n' "$B/password" "$B/cache/agent"
        for i in $(seq "$APPS"); do
            printf '[apps.app%02d]\npaths = ["%s"]\nrepository = "%s/app%02d"\npassword-file = "%s"\n\n' \
                "$i" "$B/volumes/app$i" "$repos" "$i" "$B/password"
        done
    } >"$file"
    printf '%s' "$port"
}

log "preparing $APPS volumes and $((2 * APPS)) repositories"
for i in $(seq "$APPS"); do
    cp -r "$SMALL_DIR" "$B/volumes/app$i"
    for side in cli agent; do
        "$CAIRN_BIN" init --quiet -r "$B/repos-$side/app$(printf %02d "$i")" --password-file "$B/password" \
            >/dev/null 2>>"$LOGS/init.log"
    done
done
write_config "$B/cli.toml" "$B/repos-cli" >/dev/null
AGENT_PORT=$(write_config "$B/agent.toml" "$B/repos-agent")

# The CLI, one backup after the other.
cat >"$B/cli-cycle.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
for i in \$(seq $APPS); do
    "$CAIRN_BIN" --quiet --config "$B/cli.toml" backup --for-app "app\$(printf %02d "\$i")"
done
EOF
chmod +x "$B/cli-cycle.sh"

# The agent: every app triggered at once, then wait for the last run to end.
cat >"$B/agent-cycle.sh" <<EOF
#!/usr/bin/env bash
set -euo pipefail
for i in \$(seq $APPS); do
    "$CAIRN_BIN" agent run "app\$(printf %02d "\$i")" --agent 127.0.0.1:$AGENT_PORT >/dev/null
done
while :; do
    left=\$("$CAIRN_BIN" --json agent history --limit 1000 --agent 127.0.0.1:$AGENT_PORT |
        python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["state"] in ("queued","running")))')
    [[ \$left == 0 ]] && break
    sleep 0.1
done
EOF
chmod +x "$B/agent-cycle.sh"

"$CAIRN_BIN" --config "$B/agent.toml" agent serve 2>"$LOGS/agent.log" &
AGENT_PID=$!
trap 'kill $AGENT_PID 2>/dev/null || true' EXIT
for _ in $(seq 200); do grep -q "agent listening on" "$LOGS/agent.log" && break; sleep 0.05; done
grep -q "agent listening on" "$LOGS/agent.log" || die "the agent did not start: $(cat "$LOGS/agent.log")"

log "cycle of $APPS apps"
timed cycle cli -- "$B/cli-cycle.sh"
SERVER_PID=$AGENT_PID timed cycle agent -- "$B/agent-cycle.sh"
failed=$("$CAIRN_BIN" --json agent history --limit 1000 --agent "127.0.0.1:$AGENT_PORT" |
    python3 -c 'import json,sys; print(sum(1 for r in json.load(sys.stdin) if r["state"] != "succeeded"))')
[[ $failed == 0 ]] || die "$failed agent runs did not succeed (see $LOGS/agent.log)"
# The runs' own span: the first queued to the last ended, without the CLI's polling.
span=$("$CAIRN_BIN" --json agent history --limit 1000 --agent "127.0.0.1:$AGENT_PORT" | python3 -c '
import json, sys
from datetime import datetime
def t(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
runs = json.load(sys.stdin)
print("%.2f" % (max(t(r["ended"]) for r in runs) - min(t(r["queued"]) for r in runs)))')

log "idle for $IDLE s"
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$AGENT_PID/status"; }
SERVER_PID=$AGENT_PID
cpu0=$(server_cpu)
rss_max=0
for _ in $(seq $((IDLE / 5))); do
    sleep 5
    r=$(rss_kib)
    ((r > rss_max)) && rss_max=$r
done
cpu1=$(server_cpu)

cli_wall=$(printf '%s\n' "${RESULTS[@]}" | awk '$1 == "cycle" && $2 == "cli" {print $3}')
agent_wall=$(printf '%s\n' "${RESULTS[@]}" | awk '$1 == "cycle" && $2 == "agent" {print $3}')
agent_cpu=$(printf '%s\n' "${RESULTS[@]}" | awk '$1 == "cycle" && $2 == "agent" {print $7}')
cat <<EOF

## cairn agent overhead ($MODE: $APPS apps of 300 files / 3 MiB, each its own repository; caches dropped: $CACHES_DROPPED)

| | wall | ratio to the CLI |
|---|---|---|
| CLI, $APPS backups one after the other | ${cli_wall} s | 1.00 |
| agent, one cycle (trigger all, wait for the last) | ${agent_wall} s | $(awk -v a="$agent_wall" -v c="$cli_wall" 'BEGIN {printf "%.2f", a / c}') |
| agent, its runs' own span (first queued → last ended) | ${span} s | $(awk -v a="$span" -v c="$cli_wall" 'BEGIN {printf "%.2f", a / c}') |

The agent's CPU during the cycle: ${agent_cpu} s. Idle over ${IDLE} s: peak RSS $(awk -v r="$rss_max" 'BEGIN {printf "%.1f", r / 1024}') MiB,
CPU $(awk -v a="$cpu0" -v b="$cpu1" -v s="$IDLE" 'BEGIN {printf "%.3f", (b - a) / s * 100}') % of a core ($(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN {printf "%.2f", b - a}') s).
Goals: ratio ≤ 1.10, RSS < 30 MiB, CPU < 0.1 %.
EOF
