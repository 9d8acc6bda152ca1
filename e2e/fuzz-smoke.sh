#!/usr/bin/env bash
# Builds the fuzz workspace (fuzz/, docs/fuzzing.md) once and runs every target for a bounded
# time, starting from its checked-in seed corpus (fuzz/corpus/TARGET, copied to a scratch
# directory under target/ so runs never modify the repository). Fails when any target
# crashes, leaks past the RSS limit or hangs; the crashing inputs are kept.
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
t0=$(date +%s)
# One build of every target (one dependency graph: kube, tonic, … are built once), without
# optimisation: a smoke run replays the corpus and fuzzes a few seconds, so compile time
# matters more than executions per second (the campaign, e2e/fuzz/campaign.sh, builds
# optimised binaries). Debug assertions and overflow checks are on either way.
# The build's output goes to a log: on failure its errors are printed after the tail, with the
# disk and memory left (CI shows the end of the output), and the build is tried once more on
# one job (a linker killed for memory passes then; a compile error fails the same way again).
build_log="$CARGO_TARGET_DIR/smoke-build.log"
mkdir -p "$CARGO_TARGET_DIR"
build() { cargo fuzz build -s none --dev >"$build_log" 2>&1; }
explain() {
  tail -n 30 "$build_log"
  echo "fuzz: the build failed; its error lines:" >&2
  grep -E '^error|SIGKILL|signal: |No space left|cannot allocate|Killed' "$build_log" | head -n 40 >&2 || true
  df -h "$CARGO_TARGET_DIR" >&2 || true
  free -m >&2 || true
}
if ! build; then
  explain
  echo "fuzz: building again on one job" >&2
  if ! CARGO_BUILD_JOBS=1 build; then explain; exit 1; fi
fi
t1=$(date +%s)
echo "fuzz: built every target in $((t1 - t0))s"
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/debug"
scratch="$CARGO_TARGET_DIR/smoke"
rm -rf "$scratch"
# Targets run FUZZ_JOBS at a time (default: one per core, at most 2); each prints its lines
# when it ends.
jobs=${FUZZ_JOBS:-$(( $(nproc) >= 2 ? 2 : 1 ))}
# one TARGET: a bounded run from the seed corpus; writes its report and exit status.
one() {
  local t=$1 corpus="$scratch/corpus/$1" artifacts="$scratch/artifacts/$1" rc=0
  mkdir -p "$corpus" "$artifacts"
  [ -d "fuzz/corpus/$t" ] && cp -R "fuzz/corpus/$t/." "$corpus/"
  {
    echo "fuzz: $t (${secs}s, $(find "$corpus" -type f | wc -l) seeds)"
    "$bin/$t" "$corpus" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=4096 -timeout=10 \
      -artifact_prefix="$artifacts/" -print_final_stats=1 >"$scratch/$t.log" 2>&1 || rc=$?
    grep -E '^stat::number_of_executed_units|^Done [0-9]+ runs' "$scratch/$t.log" | tail -n 1 || true
    if [ "$rc" -ne 0 ]; then
      tail -n 40 "$scratch/$t.log"
      echo "fuzz: $t FAILED (exit $rc); input(s) in $artifacts"
    fi
  } >"$scratch/$t.report" 2>&1
  echo "$rc" >"$scratch/$t.rc"
}
mkdir -p "$scratch"
targets=()
for t in $(cargo fuzz list); do
  case $t in
    daemon_l2tp_datagram|daemon_esp_inner)
      # Real sockets on 127.0.0.1, among them raw GRE and ESP sockets.
      if [ "$(id -u)" -ne 0 ]; then echo "fuzz: $t skipped (needs root for raw sockets)"; continue; fi ;;
  esac
  targets+=("$t")
done
running=()
for t in "${targets[@]}"; do
  one "$t" &
  running+=("$t")
  if [ "${#running[@]}" -ge "$jobs" ]; then
    wait -n || true
    still=()
    for r in "${running[@]}"; do
      if [ -f "$scratch/$r.rc" ]; then cat "$scratch/$r.report"; else still+=("$r"); fi
    done
    running=("${still[@]}")
  fi
done
wait
for r in "${running[@]}"; do cat "$scratch/$r.report"; done
failed=()
for t in "${targets[@]}"; do
  [ "$(cat "$scratch/$t.rc" 2>/dev/null || echo 1)" -eq 0 ] || failed+=("$t")
done
echo "fuzz: ran ${#targets[@]} targets, $jobs at a time, in $(( $(date +%s) - t1 ))s (build $((t1 - t0))s)"
if [ "${#failed[@]}" -ne 0 ]; then
  echo "fuzz: failed: ${failed[*]}" >&2
  exit 1
fi
