#!/usr/bin/env bash
# The longer fuzzing campaign (docs/fuzzing.md): every target (or the ones named) for RUNS
# executions each, or until MAX_SECONDS per target, at the lowest CPU priority, from the
# checked-in corpus (copied under target/fuzz/campaign; the grown corpus stays there).
# Runs in chunks (CHUNK seconds, default 1800) that add to each target's running total of
# executions (target/fuzz/campaign/TARGET.total): call it again to carry on. Prints one line
# per chunk (executions, total, seconds, exec/s, crashes) and appends it to
# target/fuzz/campaign/summary.tsv. Crashing inputs: target/fuzz/campaign/artifacts/TARGET/.
#
#   e2e/fuzz/campaign.sh [RUNS] [MAX_SECONDS] [TARGET...]     # defaults: 10000000 14400
#   JOBS=2 e2e/fuzz/campaign.sh ...                            # targets run two at a time
#   BIN_DIR=DIR e2e/fuzz/campaign.sh ...   # run binaries built earlier (e.g. a copy kept
#                                          # while the tree changes); no build
#
# To free the cores for a while (a benchmark, a CI run): `touch target/fuzz/campaign/PAUSE`
# and `pkill -INT -f <the fuzz binaries' directory>`: each fuzzer ends its chunk (exit 72,
# recorded), and no new chunk starts until the file is removed. (SIGSTOP does not do: libFuzzer's
# -timeout alarm counts wall time, so a stopped fuzzer reports a false timeout.)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10000000}
max=${2:-14400}
chunk=${CHUNK:-1800}
shift 2 || shift $#
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target/fuzz"
if [ -n "${BIN_DIR:-}" ]; then
  bin=$BIN_DIR
else
  nice -n 19 cargo fuzz build -s none >/dev/null
  bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
fi
work="$CARGO_TARGET_DIR/campaign"
mkdir -p "$work"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

one() {
  local t=$1 corpus="$work/corpus/$1" artifacts="$work/artifacts/$1" start rc execs secs crashes
  local total_file="$work/$1.total" total left chunk_secs
  mkdir -p "$corpus" "$artifacts"
  [ -d "fuzz/corpus/$t" ] && cp -Rn "fuzz/corpus/$t/." "$corpus/"
  total=$(cat "$total_file" 2>/dev/null || echo 0)
  local begun
  begun=$(date +%s)
  # Chunks of at most CHUNK seconds, each adding to the target's running total
  # ($work/TARGET.total): a campaign cut short (a machine that stops) loses at most one
  # chunk, and a later call carries on from the total and the grown corpus.
  while [ "$total" -lt "$runs" ] && [ $(( $(date +%s) - begun )) -lt "$max" ]; do
    while [ -e "$work/PAUSE" ]; do sleep 5; done
    left=$(( max - ($(date +%s) - begun) ))
    chunk_secs=$(( left < chunk ? left : chunk ))
    start=$(date +%s)
    rc=0
    nice -n 19 "$bin/$t" "$corpus" -runs=$(( runs - total )) -max_total_time="$chunk_secs" \
      -rss_limit_mb=2048 -max_len=4096 -timeout=10 -artifact_prefix="$artifacts/" \
      -print_final_stats=1 >"$work/$t.log" 2>&1 || rc=$?
    secs=$(( $(date +%s) - start ))
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
    total=$(( total + ${execs:-0} ))
    echo "$total" >"$total_file"
    crashes=$(find "$artifacts" -type f | wc -l)
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-?}" "$total" "$secs" \
      "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$crashes" "$rc" | tee -a "$work/summary.tsv"
    # 72: libFuzzer's exit on SIGINT (a chunk ended early on purpose; see PAUSE above).
    { [ "$rc" -eq 0 ] || [ "$rc" -eq 72 ]; } && [ -n "$execs" ] || break
  done
}

# The header names what was fuzzed: the tree's commit, or BIN_DIR's COMMIT note.
built=$(cat "${BIN_DIR:-/nonexistent}/COMMIT" 2>/dev/null || git rev-parse --short HEAD)
printf '# %s %s\ntarget\texecutions\ttotal\tseconds\texec_per_s\tcrashes\texit\n' "$(date -u +%FT%TZ)" "$built" >>"$work/summary.tsv"
jobs=${JOBS:-1}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  one "$t" &
done
wait
