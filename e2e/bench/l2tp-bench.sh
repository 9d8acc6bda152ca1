#!/usr/bin/env bash
# L2TP benchmarks, with PPTP throughput in the same run for comparison (see
# tunnel-bench.sh). Needs root.
PROTOCOLS="l2tp pptp" exec "$(dirname "$0")/tunnel-bench.sh" "$@"
