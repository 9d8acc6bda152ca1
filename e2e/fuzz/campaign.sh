#!/usr/bin/env bash
# The longer fuzzing campaign (docs/fuzzing.md): every target (or the ones named) for RUNS
# executions each, or until MAX_SECONDS per target, at the lowest CPU priority, from the
# checked-in corpus (copied under target/fuzz/campaign; the grown corpus stays there).
# Prints one line per target (executions, seconds, exec/s, crashes) and writes the table to
# target/fuzz/campaign/summary.tsv. Crashing inputs: target/fuzz/campaign/artifacts/TARGET/.
#
#   e2e/fuzz/campaign.sh [RUNS] [MAX_SECONDS] [TARGET...]     # defaults: 10000000 14400
#   JOBS=2 e2e/fuzz/campaign.sh ...                            # targets run two at a time
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=${1:-10000000}
max=${2:-14400}
shift 2 || shift $#
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="$PWD/target/fuzz"
nice -n 19 cargo fuzz build -s none >/dev/null
bin="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
work="$CARGO_TARGET_DIR/campaign"
mkdir -p "$work"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || mapfile -t targets < <(cargo fuzz list)

one() {
  local t=$1 corpus="$work/corpus/$1" artifacts="$work/artifacts/$1" start rc=0 execs secs crashes
  mkdir -p "$corpus" "$artifacts"
  [ -d "fuzz/corpus/$t" ] && cp -Rn "fuzz/corpus/$t/." "$corpus/"
  start=$(date +%s)
  nice -n 19 "$bin/$t" "$corpus" -runs="$runs" -max_total_time="$max" -rss_limit_mb=2048 \
    -max_len=4096 -timeout=10 -artifact_prefix="$artifacts/" -print_final_stats=1 \
    >"$work/$t.log" 2>&1 || rc=$?
  secs=$(( $(date +%s) - start ))
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$t.log" | tail -n 1)
  crashes=$(find "$artifacts" -type f | wc -l)
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$t" "${execs:-?}" "$secs" \
    "$(( ${execs:-0} / (secs > 0 ? secs : 1) ))" "$crashes" "$rc" | tee -a "$work/summary.tsv"
}

printf 'target\texecutions\tseconds\texec_per_s\tcrashes\texit\n' >>"$work/summary.tsv"
jobs=${JOBS:-1}
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do wait -n || true; done
  one "$t" &
done
wait
