#!/usr/bin/env bash
# The main job end to end on a local repository: build, init, back up a directory, list
# snapshots, back up again (deduplicated), restore, and verify the restore against the source.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet -p cairn-cli
cairn=target/release/cairn
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export CAIRN_REPOSITORY="$work/repo"
printf 'quickstart password\n' > "$work/password"
export CAIRN_PASSWORD_FILE="$work/password"
src="$PWD/host"   # back up this project's own sources

set -x
"$cairn" init
"$cairn" backup --tag quickstart "$src"
"$cairn" backup --tag quickstart "$src"   # unchanged: nothing new is stored
"$cairn" snapshots
"$cairn" stats
"$cairn" restore latest --target "$work/restore" --verify
diff -r "$src" "$work/restore$src"
set +x
echo "quickstart: restore is identical to $src"
