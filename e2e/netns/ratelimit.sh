#!/usr/bin/env bash
# Per-user rate limits (VpnUser spec.rateLimit), per-user metrics and setup-phase
# metrics, measured through real sessions in network namespaces this script creates:
#
#   [client ns] --veth-- [gateway ns] --veth-- [lan ns: iperf3 server 192.168.77.2]
#
# iperf3 runs through the in-repo client's TUN device; the achieved rates are compared
# with the configured limits (within 10 %). Needs root and iperf3. Traffic never leaves
# the namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT

GW=$(mkns gw); LAN=$(mkns lan); CA=$(mkns ca)
link "$GW" 10.98.1.1/24 "$CA" 10.98.1.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.210.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.98.1.1

M="$WORK/manifests.yaml"
write_manifests() {  # $1: carol's spec.rateLimit
  cat >"$M.new" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  pptp:
    authentication: [mschapv2]
    encryption: require
  l2tp:
    enabled: true
    authentication: [mschapv2]
    encryption: require
    allowUnencrypted: true
  ppp:
    localAddress: 10.210.0.1
    addressPool: 10.210.0.0/24
  metrics: { perUser: true }
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData: { carol: carol-secret, dave: dave-secret }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: carol, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: carol }
  rateLimit: $1
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: dave, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: dave }
YAML
  mv "$M.new" "$M"
}
write_manifests "{ down: 20M, up: 5M }"

EP=10.98.1.1:9810
bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --watch-interval 1
wait_for "$WORK/gateway.log" "gateway ready" 20
bg "$LAN" iperf3 iperf3 -s -B 192.168.77.2
sleep 0.5

# rate NS [iperf3 args]: the receiver's bits/s of a 4 s iperf3 run to the LAN host.
rate() {
  local ns=$1; shift
  ip netns exec "$ns" iperf3 -c 192.168.77.2 -t 4 -O 1 -J "$@" >"$WORK/iperf.json"
  python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bits_per_second"]))' "$WORK/iperf.json"
}
# within LIMIT MEASURED: |measured - limit| <= 10 % of the limit.
within() {
  python3 -c 'import sys; l,m=int(sys.argv[1]),int(sys.argv[2]); print(f"limit {l/1e6:.1f} Mbit/s, measured {m/1e6:.2f} Mbit/s ({m/l*100:.1f} %)"); sys.exit(0 if abs(m-l) <= 0.1*l else 1)' "$1" "$2"
}
report() { log "$1: $(within "$2" "$3" || true)"; }

bg "$CA" carol "$CLIENT_BIN" --server 10.98.1.1 --user carol --password carol-secret \
  --tun slc0 --route 192.168.77.0/24
C_PID=$BG_PID
wait_for "$WORK/carol.log" "^(UP|FAILED)" 20 || true
check "carol: PPTP session up" grep -q '^UP ' "$WORK/carol.log"

down=$(rate "$CA" -R); report "PPTP TCP down (limit 20M)" 20000000 "$down"
check "PPTP: TCP toward the client within 10 % of 20 Mbit/s" within 20000000 "$down"
up=$(rate "$CA"); report "PPTP TCP up (limit 5M)" 5000000 "$up"
check "PPTP: TCP from the client within 10 % of 5 Mbit/s" within 5000000 "$up"
udp=$(rate "$CA" -R -u -b 40M -l 1300); report "PPTP UDP down offered at 40M (limit 20M)" 20000000 "$udp"
check "PPTP: UDP offered at 2x the limit leaves within 10 % of it (shaped)" within 20000000 "$udp"
check "the shaper counted the drops of its full queue" bash -c \
  "test \"\$(metric $GW $EP 'sluice_dropped_packets_total{reason=\"rate_limit_down\"}' | cut -d. -f1)\" -gt 0"
check "the sessions table shows the limit" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions | grep -E '^server +carol .* 20M/5M '"

# A changed limit applies to the live session.
write_manifests "{ down: 8M, up: 5M, burst: 50k }"
wait_for "$WORK/gateway.log" "configuration applied" 10 || true
sleep 1
down=$(rate "$CA" -R); report "PPTP TCP down after reload (limit 8M)" 8000000 "$down"
check "reload: the new 8 Mbit/s limit applies to the live session" within 8000000 "$down"

# dave has no limit: the same path is much faster.
kill "$C_PID" 2>/dev/null || true
wait_for "$WORK/gateway.log" "session down" 10 || true
bg "$CA" dave "$CLIENT_BIN" --server 10.98.1.1 --user dave --password dave-secret \
  --tun slc0 --route 192.168.77.0/24
D_PID=$BG_PID
wait_for "$WORK/dave.log" "^(UP|FAILED)" 20 || true
free=$(rate "$CA" -R)
log "PPTP TCP down without a limit: $((free / 1000000)) Mbit/s"
check "without a limit the same path carries more than 2x carol's limit" test "$free" -gt 40000000
kill "$D_PID" 2>/dev/null || true
wait_for "$WORK/gateway.log" "session down.*dave|dave.*session down" 10 || sleep 1

# L2TP (plain, allowUnencrypted) is limited the same way.
bg "$CA" carol-l2tp "$CLIENT_BIN" --protocol l2tp --server 10.98.1.1 --user carol \
  --password carol-secret --encryption require --tun slc1 --route 192.168.77.0/24
wait_for "$WORK/carol-l2tp.log" "^(UP|FAILED)" 20 || true
check "carol: L2TP session up" grep -q '^UP ' "$WORK/carol-l2tp.log"
down=$(rate "$CA" -R); report "L2TP TCP down (limit 8M)" 8000000 "$down"
check "L2TP: TCP toward the client within 10 % of 8 Mbit/s" within 8000000 "$down"

# Per-user series (spec.metrics.perUser) and setup-phase histograms.
check "per-user sessions gauge" bash -c \
  "test \"\$(metric $GW $EP 'sluice_user_sessions_active{user=\"carol\"}')\" = 1"
check "per-user bytes include the ended PPTP session" bash -c \
  "test \"\$(metric $GW $EP 'sluice_user_bytes_total{user=\"carol\",direction=\"tx\"}' | cut -d. -f1)\" -gt 30000000"
check "dave's bytes stay after his session ended" bash -c \
  "test \"\$(metric $GW $EP 'sluice_user_bytes_total{user=\"dave\",direction=\"tx\"}' | cut -d. -f1)\" -gt 0"
for p in control lcp auth ncp; do
  for proto in pptp l2tp; do
    check "setup phase $p timed ($proto)" bash -c \
      "test \"\$(metric $GW $EP 'sluice_session_setup_phase_duration_seconds_count{protocol=\"$proto\",phase=\"$p\"}' | cut -d. -f1)\" -ge 1"
  done
done
check "sessions_active carries gateway and encoding labels" bash -c \
  "http $GW http://$EP/metrics | grep -q 'sluice_sessions_active{gateway=\"default/office\",protocol=\"l2tp\",encoding=\"mppe128\"} 1'"

summary
