# Shared helpers for the network-namespace tests. Source, don't run.
# Every namespace, veth and process created here is torn down by `netns_cleanup`.

set -euo pipefail

: "${SLUICE_BIN:?SLUICE_BIN must point at the sluice-dataplane binary}"
# The in-repo client and load generator: built next to the data plane by default.
: "${CLIENT_BIN:=$(dirname "$SLUICE_BIN")/sluice-client}"
[ -x "$CLIENT_BIN" ] || { echo "CLIENT_BIN: no sluice-client at $CLIENT_BIN (cargo build --release -p sluice-client)" >&2; exit 2; }
export CLIENT_BIN
TAG="sl$$"
WORK=$(mktemp -d /tmp/sluice-e2e.XXXXXX)
# The gateways write their admin token here, and `sluice-dataplane sessions|drain` read it.
export SLUICE_ADMIN_TOKEN_FILE="$WORK/admin-token"
NSES=()
PIDS=()
FAILED=0
PASSED=0

log() { printf '\033[1m[e2e]\033[0m %s\n' "$*" >&2; }

netns_cleanup() {
  local rc=$?
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  # mkns runs in $(...), so NSES may miss names: delete by this run's prefix too.
  for ns in "${NSES[@]:-}" $(ip netns list | awk -v t="$TAG-" 'index($1, t) == 1 { print $1 }'); do
    [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true
  done
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    log "logs kept in $WORK"
    for f in "$WORK"/*.log; do [ -f "$f" ] && { echo "----- $f"; tail -n 60 "$f"; }; done
  else
    rm -rf "$WORK"
  fi
}

# mkns NAME: a fresh namespace with loopback up.
mkns() {
  local ns="$TAG-$1"
  ip netns add "$ns"
  NSES+=("$ns")
  ip -n "$ns" link set lo up
  echo "$ns"
}

# link NS_A ADDR_A NS_B ADDR_B: a veth pair between two namespaces (addresses with prefix).
link() {
  local a=$1 aa=$2 b=$3 ba=$4 ia="v$RANDOM$RANDOM" ib="v$RANDOM$RANDOM"
  ia=${ia:0:14}; ib=${ib:0:14}
  ip link add "$ia" type veth peer name "$ib"
  ip link set "$ia" netns "$a"
  ip link set "$ib" netns "$b"
  ip -n "$a" addr add "$aa" dev "$ia"
  ip -n "$b" addr add "$ba" dev "$ib"
  ip -n "$a" link set "$ia" up
  ip -n "$b" link set "$ib" up
}

# bg NS LOGNAME CMD...: run a command in a namespace in the background; sets BG_PID.
bg() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$@" >"$WORK/$name.log" 2>&1 &
  BG_PID=$!
  PIDS+=("$BG_PID")
}

# wait_for FILE PATTERN [SECONDS]: see ../common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# check NAME CMD...: run one assertion, record pass/fail, never abort the run.
check() {
  local name=$1; shift
  if "$@" >"$WORK/check.out" 2>&1; then
    PASSED=$((PASSED + 1)); log "ok   - $name"
  else
    FAILED=$((FAILED + 1)); log "FAIL - $name"; sed 's/^/    /' "$WORK/check.out" >&2
  fi
}

# http NS URL: GET through python (no curl dependency inside namespaces).
http() {
  ip netns exec "$1" python3 -c 'import sys,urllib.request;sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "$2"
}

# metric NS ENDPOINT NAME_AND_LABELS: the value of one sample (0 when absent).
metric() {
  http "$1" "http://$2/metrics" | awk -v m="$3" 'index($0, m" ") == 1 { v = $2 } END { print (v == "" ? 0 : v) }'
}

# metric_sum NS ENDPOINT NAME LABEL: the sum of NAME's samples whose labels contain LABEL
# (e.g. protocol="pptp"), across the other labels (0 when none).
metric_sum() {
  http "$1" "http://$2/metrics" | awk -v m="$3{" -v l="$4" \
    'index($0, m) == 1 && index($0, l) > 0 { s += $NF } END { printf "%d\n", s }'
}

export -f http metric metric_sum

summary() {
  log "$PASSED passed, $FAILED failed"
  echo "$PASSED passed, $FAILED failed"
  [ "$FAILED" -eq 0 ]
}
