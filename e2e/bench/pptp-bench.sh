#!/usr/bin/env bash
# PPTP benchmarks on this machine, in network namespaces created here:
#   - full session setups per second (TCP + LCP + MS-CHAPv2 + IPCP + CCP/MPPE-128)
#   - gateway RSS per idle session with many concurrent sessions
#   - tunnel throughput at 64 B and 1400 B with MPPE-128 (client → gateway → TUN)
#   - the in-memory MPPE data path next to the raw RC4 of the same crate
# Prints figures; asserts nothing. Needs root.
# Knobs: SETUPS (default 5000), IDLE (default 10000), CONCURRENCY (default 128).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice-dataplane}
source "$repo/e2e/netns/lib.sh"
trap netns_cleanup EXIT
ulimit -n "$(ulimit -Hn)"

SETUPS=${SETUPS:-5000}
IDLE=${IDLE:-10000}
CONCURRENCY=${CONCURRENCY:-128}

GW=$(mkns gw); CL=$(mkns cl)
link "$GW" 10.98.0.1/24 "$CL" 10.98.0.2/24
ip netns exec "$CL" sysctl -qw net.ipv4.ip_local_port_range="1024 65000"

M="$WORK/bench.yaml"
cat >"$M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: bench }
spec:
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
RUST_LOG=warn bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --http "$EP"
GW_PID=$BG_PID
for _ in $(seq 100); do http "$GW" "http://$EP/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
# bg started `ip netns exec`, which execs the binary: same PID.

common=(--server 10.98.0.1 --user bench --password bench-password --quiet --timeout 120)

echo "## machine: $(nproc) cores, $(uname -r)"
echo "## in-memory data path"
"$SLUICE_BIN" bench engine --seconds 1

echo "## concurrent idle sessions (fresh gateway)"
ip netns exec "$CL" "$SLUICE_BIN" bench idle "${common[@]}" --sessions "$IDLE" --concurrency "$CONCURRENCY" --gateway-pid "$GW_PID"

echo "## full PPTP session setups (client and gateway share this machine's cores)"
ip netns exec "$CL" "$SLUICE_BIN" bench setups "${common[@]}" --sessions "$SETUPS" --concurrency "$CONCURRENCY"

echo "## tunnel throughput, one session, MPPE-128 stateless"
for size in ${SIZES:-64 1400}; do
  ip netns exec "$CL" "$SLUICE_BIN" bench throughput "${common[@]}" --size "$size" --seconds 3 --gateway-http "$EP"
  if [ -n "${SHOW_METRICS:-}" ]; then http "$GW" "http://$EP/metrics" | grep -E "dropped|malformed" || true; fi
done
