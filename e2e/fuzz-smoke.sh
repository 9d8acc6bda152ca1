#!/usr/bin/env bash
# Runs every cargo-fuzz target of every crate for a bounded time.
# Usage: e2e/fuzz-smoke.sh [SECONDS_PER_TARGET]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-15}
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed (cargo install cargo-fuzz --locked)" >&2
  exit 1
fi
# cargo-fuzz needs nightly flags; the stable toolchain accepts them with RUSTC_BOOTSTRAP.
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target/fuzz"
for dir in $(find . -path ./target -prune -o -name fuzz -type d -print | sort); do
  [ -f "$dir/Cargo.toml" ] || continue
  crate=$(dirname "$dir")
  for t in $(cd "$crate" && cargo fuzz list); do
    echo "fuzz: $crate $t (${secs}s)"
    mkdir -p "$CARGO_TARGET_DIR/corpus/$t"
    (cd "$crate" && cargo fuzz run -s none "$t" "$CARGO_TARGET_DIR/corpus/$t" -- \
      -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 2>&1 | tail -n 4)
  done
done
