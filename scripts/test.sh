#!/usr/bin/env bash
# The whole test suite. Installs what the tests need when it is missing (scripts/test-tools.sh:
# the servers they start on 127.0.0.1, the C and Python toolchains for the plugins), then runs
# `cargo test --workspace` with any extra arguments.
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=scripts/test-tools.sh
source scripts/test-tools.sh

exec cargo test --workspace "$@"
