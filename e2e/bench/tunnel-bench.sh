#!/usr/bin/env bash
# Tunnel benchmarks on this machine, in network namespaces created here, for each
# protocol in PROTOCOLS (default "pptp"; e2e/bench/pptp-bench.sh and l2tp-bench.sh set it):
#   - full session setups per second
#       pptp: TCP + LCP + MS-CHAPv2 + IPCP + CCP/MPPE-128
#       l2tp: SCCRQ/SCCRP/SCCCN + ICRQ/ICRP/ICCN + LCP + MS-CHAPv2 + IPCP (no MPPE), both
#             with one tunnel per session and with SESSIONS_PER_TUNNEL sessions per tunnel
#   - gateway RSS per idle session with many concurrent sessions
#   - tunnel throughput at 64 B and 1400 B (client → gateway → TUN), MPPE-128 for pptp,
#     plain for l2tp
#   - the in-memory MPPE data path next to the raw RC4 of the same crate (pptp)
# Prints figures; asserts nothing. Needs root.
# Knobs: SETUPS (default 5000), IDLE (default 10000), CONCURRENCY (default 128),
# SESSIONS_PER_TUNNEL (default 100), SIZES (default "64 1400"), SETTLE (seconds the idle
# sessions are held before RSS is read and over which the gateway's idle CPU is measured;
# default 3, use 75 to span the 60 s PPTP and LCP keep-alive intervals), STEPS (default
# "engine idle setups throughput").
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice-dataplane}
CLIENT_BIN=${CLIENT_BIN:-$repo/target/release/sluice-client}
source "$repo/e2e/netns/lib.sh"
trap netns_cleanup EXIT
# 50,000 PPTP sessions need 50,000 descriptors on each side: raise the hard limit when allowed.
ulimit -Hn 1048576 2>/dev/null || true
ulimit -n "$(ulimit -Hn)"

SETUPS=${SETUPS:-5000}
IDLE=${IDLE:-10000}
CONCURRENCY=${CONCURRENCY:-128}
PROTOCOLS=${PROTOCOLS:-pptp}
SESSIONS_PER_TUNNEL=${SESSIONS_PER_TUNNEL:-100}

GW=$(mkns gw); CL=$(mkns cl)
link "$GW" 10.98.0.1/24 "$CL" 10.98.0.2/24
ip netns exec "$CL" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

M="$WORK/bench.yaml"
cat >"$M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: bench }
spec:
  l2tp: { enabled: true, allowUnencrypted: true }
  ppp:
    localAddress: 10.128.0.1
    addressPool: 10.128.0.0/16
---
apiVersion: v1
kind: Secret
metadata: { name: bench }
stringData: { password: bench-password }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: bench }
spec:
  gatewayRef: { name: bench }
  passwordSecretRef: { name: bench }
YAML

EP=10.98.0.1:9810
gateway_start() {  # a fresh gateway (idle RSS is measured from its start)
  [ -n "${GW_PID:-}" ] && { kill "$GW_PID" 2>/dev/null; wait "$GW_PID" 2>/dev/null || true; }
  # The load generator is one address opening thousands of PPTP control connections and
  # L2TP tunnels: the per-source caps (docs/security.md) would refuse it, so they are lifted.
  RUST_LOG=warn bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --l2tp-control-rate 0 --max-calls-per-connection 1000 \
    --max-control-connections-per-source 1000000 --max-setups-per-source 1024
  GW_PID=$BG_PID   # bg started `ip netns exec`, which execs the binary: same PID
  for _ in $(seq 100); do http "$GW" "http://$EP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
}

echo "## machine: $(nproc) cores, $(uname -r)"
for proto in $PROTOCOLS; do
  common=(--protocol "$proto" --server 10.98.0.1 --user bench --password bench-password --quiet --timeout 120)
  gateway_start
  steps=" ${STEPS:-engine idle setups throughput} "
  if [ "$proto" = pptp ] && [[ $steps == *" engine "* ]]; then
    echo "## in-memory data path"
    "$CLIENT_BIN" bench engine --seconds 1
  fi

  if [[ $steps == *" idle "* ]]; then
  echo "## $proto: concurrent idle sessions (fresh gateway)"
  ip netns exec "$CL" "$CLIENT_BIN" bench idle "${common[@]}" --sessions "$IDLE" --concurrency "$CONCURRENCY" \
    --calls-per-connection "$([ "$proto" = l2tp ] && echo "$SESSIONS_PER_TUNNEL" || echo 1)" --gateway-pid "$GW_PID" \
    --settle "${SETTLE:-3}"
  fi

  if [[ $steps == *" setups "* ]]; then
  echo "## $proto: full session setups, one tunnel (control connection) per session (client and gateway share this machine's cores)"
  ip netns exec "$CL" "$CLIENT_BIN" bench setups "${common[@]}" --sessions "$SETUPS" --concurrency "$CONCURRENCY"
  if [ "$proto" = l2tp ]; then
    echo "## $proto: full session setups, $SESSIONS_PER_TUNNEL sessions per tunnel"
    ip netns exec "$CL" "$CLIENT_BIN" bench setups "${common[@]}" --sessions "$SETUPS" --concurrency "$CONCURRENCY" \
      --calls-per-connection "$SESSIONS_PER_TUNNEL"
  fi
  fi

  [[ $steps == *" throughput "* ]] || continue
  echo "## $proto: tunnel throughput, one session$([ "$proto" = pptp ] && echo ", MPPE-128 stateless")"
  for size in ${SIZES:-64 1400}; do
    ip netns exec "$CL" "$CLIENT_BIN" bench throughput "${common[@]}" --size "$size" --seconds 3 --gateway-metrics "$EP"
    if [ -n "${SHOW_METRICS:-}" ]; then http "$GW" "http://$EP/metrics" | grep -E "dropped|malformed" || true; fi
  done
done
