#!/usr/bin/env bash
# The main job end to end on a local repository: build, init, back up a directory, list
# snapshots, back up again (deduplicated), restore, and verify the restore against the source;
# then find a file, mount the snapshots (when FUSE is there), and discover the volumes of a
# fake Kubernetes node with the built-in kubelet plugin and no configuration.
set -euo pipefail
cd "$(dirname "$0")/.."
# The built-in plugins are built for wasm32-wasip2 (rust-toolchain.toml lists the target).
if command -v rustup >/dev/null; then
  rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
fi
cargo build --release --quiet -p cairn-cli
cairn=target/release/cairn
work=$(mktemp -d)
cleanup() {
  if [ -n "${mounted:-}" ]; then fusermount -u "$work/mnt" 2>/dev/null || kill "$mounted" 2>/dev/null || true; wait 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT
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
"$cairn" find 'lib.rs' --snapshot latest
set +x
echo "quickstart: restore is identical to $src"

# The snapshots as a read-only file system, when this machine has FUSE.
if [ -e /dev/fuse ] && command -v fusermount >/dev/null; then
  mkdir "$work/mnt"
  "$cairn" mount "$work/mnt" & mounted=$!
  for _ in $(seq 100); do [ -d "$work/mnt/snapshots" ] && break; sleep 0.1; done
  set -x
  ls "$work/mnt" "$work/mnt/snapshots"
  diff -r "$src" "$work/mnt/snapshots/latest$src"
  set +x
  kill -INT "$mounted"; wait "$mounted"; mounted=
  echo "quickstart: the mounted snapshot is identical to $src"
fi

# A fake Kubernetes node: one pod with an emptyDir volume, under a host root.
node="$work/node"
uid=1f0e7c1a-5b2d-4c3e-9f8a-0000000000a1
mkdir -p "$node/var/lib/kubelet/pods/$uid/volumes/kubernetes.io~empty-dir/content" \
  "$node/var/log/pods/blog_ghost-0_$uid"
echo 'first post' > "$node/var/lib/kubelet/pods/$uid/volumes/kubernetes.io~empty-dir/content/post.md"
set -x
"$cairn" --host-root "$node" discover
set +x
echo "quickstart: the built-in kubelet plugin found the pod's volume with no configuration"
