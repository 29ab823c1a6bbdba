#!/usr/bin/env bash
# Builds and runs the comparison of kekbit's journal with peer write-ahead logs (issue 7).
#
#   benches/compare/run.sh --quick   # short run: 2 rounds, fewer records (1-1.5 minutes)
#   benches/compare/run.sh           # full run: 5 rounds (4-9 minutes, see README.md)
#
# Other arguments are passed on: --rounds N, --only W1,W2,W3,W4,W5,W6,L1,R1,O1, --settle SECONDS,
# --quiet FRACTION, --out DIR, --disk-dir DIR. Results go to benches/compare/results/.
# KEKBIT_COMPARE_W6_MIB sets W6's size in MiB (default 4096, 512 with --quick).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
# Under the repository's (ignored) target/, apart from kekbit's own build.
export CARGO_TARGET_DIR="$repo/target/compare"
cargo build --release --manifest-path "$here/Cargo.toml"
COMPARE_RUSTC="$(rustc -V)"
COMPARE_COMMAND="benches/compare/run.sh${*:+ $*}"
export COMPARE_RUSTC COMPARE_COMMAND
exec "$CARGO_TARGET_DIR/release/kekbit-compare" "$@"
