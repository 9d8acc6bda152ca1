#!/usr/bin/env bash
# PPTP benchmarks (see tunnel-bench.sh). Needs root.
PROTOCOLS=pptp exec "$(dirname "$0")/tunnel-bench.sh" "$@"
