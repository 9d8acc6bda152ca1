#!/usr/bin/env bash
# Latency under load: the receive queues' CoDel (RFC 8289; docs/architecture.md "Latency under
# load") against real TCP through a real session, in network namespaces this script creates:
#
#   [client ns: sluice-client, TUN slc0, iperf3 -c] --veth-- [gateway ns: iperf3 -s on 10.211.0.1]
#
# CUBIC (what Windows, macOS and most Linux distributions send with) fills whatever buffer
# there is. The gateway, its client and iperf3 share one core (taskset), so the gateway's
# receive thread falls behind and a standing queue forms in its socket buffer, on any
# machine. Shown: with ECN negotiated, the queue's packets are marked CE (not dropped) and
# the sender backs off; without ECN, packets are dropped (`queue_delay`); tunnel control
# traffic is untouched (the session stays up, LCP echoes answered); and with the AQM off
# (`--aqm-target-ms 0`) nothing is signalled, so the loaded ping waits longer. Needs root and
# iperf3. Traffic never leaves the namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT
command -v iperf3 >/dev/null || { echo "iperf3 is required" >&2; exit 2; }

GW=$(mkns gw); CL=$(mkns cl)
link "$GW" 10.98.5.1/24 "$CL" 10.98.5.2/24
EP=10.98.5.1:9810
M="$WORK/manifests.yaml"
cat >"$M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  ppp: { localAddress: 10.211.0.1, addressPool: 10.211.0.0/24 }
---
apiVersion: v1
kind: Secret
metadata: { name: pw, namespace: default }
stringData: { erin: erin-secret }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: erin, namespace: default }
spec: { gatewayRef: { name: office }, passwordSecretRef: { name: pw, key: erin } }
YAML

# One core for everything on the tunnel's path, so the gateway's receive thread is behind.
CPU=$(taskset -pc $$ | awk -F': ' '{ split($2, a, /[,-]/); print a[1] }')

# gateway ARGS...: a fresh gateway (pinned), an iperf3 server on its tunnel address, and
# erin's session through it.
gateway() {
  [ -n "${G_PID:-}" ] && { kill "$G_PID" "$C_PID" "$S_PID" 2>/dev/null || true; wait "$G_PID" "$C_PID" "$S_PID" 2>/dev/null || true; }
  : >"$WORK/gateway.log"
  bg "$GW" gateway taskset -c "$CPU" "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" "$@"
  G_PID=$BG_PID
  wait_for "$WORK/gateway.log" "gateway ready" 20
  bg "$GW" iperf3 iperf3 -s -B 10.211.0.1
  S_PID=$BG_PID
  : >"$WORK/erin.log"
  # The client's TUN ring at the kernel's 500 (its own default is 32, which would hold the
  # sender's queue on the client's side): the queue under test is the gateway's.
  bg "$CL" erin taskset -c "$CPU" "$CLIENT_BIN" --server 10.98.5.1 --user erin --password erin-secret \
    --tun slc0 --tun-txqueuelen 500
  C_PID=$BG_PID
  wait_for "$WORK/erin.log" "^(UP|FAILED)" 20 || true
}

# loaded ECN: an 8 s CUBIC upload through the tunnel (ECN asked for when ECN is 1) with a ping
# alongside; prints the ping's median RTT in ms and leaves iperf3's JSON in $WORK/iperf.json.
loaded() {
  ip netns exec "$CL" sysctl -qw net.ipv4.tcp_ecn="$1"
  ip netns exec "$CL" taskset -c "$CPU" iperf3 -c 10.211.0.1 -t 8 -C cubic -J >"$WORK/iperf.json" &
  local ip3=$!
  sleep 2
  ip netns exec "$CL" ping -n -i 0.1 -c 50 -W 2 10.211.0.1 2>/dev/null |
    python3 -c 'import re,sys; r=sorted(float(x) for x in re.findall(r"time=([0-9.]+)", sys.stdin.read())); print(f"{r[len(r)//2]:.1f}" if r else "999")'
  wait "$ip3" || true
}
sent() { python3 -c 'import json,sys; print(int(json.load(open(sys.argv[1]))["end"]["sum_received"]["bytes"]))' "$WORK/iperf.json" 2>/dev/null || echo 0; }
marked() { metric "$GW" "$EP" sluice_aqm_ce_marked_total | cut -d. -f1; }
dropped() { metric "$GW" "$EP" 'sluice_dropped_packets_total{reason="queue_delay"}' | cut -d. -f1; }

gateway
check "session up (CoDel on, the default)" grep -q '^UP ' "$WORK/erin.log"

# 1. ECN negotiated: the standing queue's packets are marked, not dropped.
ecn_rtt=$(loaded 1)
log "ECN upload: $(( $(sent) / 1000000 )) MB delivered, loaded ping p50 $ecn_rtt ms, $(marked) marked, $(dropped) dropped"
check "ECN: iperf3 delivered data" test "$(sent)" -gt 0
check "ECN: CoDel marked packets CE (a standing queue formed and was signalled)" test "$(marked)" -gt 0
check "ECN: ECN-capable packets were marked rather than dropped" bash -c "test $(dropped) -le $(( $(marked) / 10 ))"

# 2. Without ECN: dropped instead, counted under their reason; the session stays up.
before=$(marked)
plain_rtt=$(loaded 0)
log "plain upload: $(( $(sent) / 1000000 )) MB delivered, loaded ping p50 $plain_rtt ms, $(( $(marked) - before )) marked, $(dropped) dropped"
check "no ECN: iperf3 delivered data" test "$(sent)" -gt 0
check "no ECN: CoDel dropped packets (dropped{queue_delay})" test "$(dropped)" -gt 0
check "no ECN: nothing was marked" test "$(marked)" -eq "$before"
check "the session survived both (tunnel control traffic is never signalled)" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions | grep -qE '^server +erin '"

# 3. CoDel off: nothing signalled, and the ping waits behind the whole queue.
gateway --aqm-target-ms 0
check "session up (CoDel off)" grep -q '^UP ' "$WORK/erin.log"
off_rtt=$(loaded 0)
log "CoDel off: $(( $(sent) / 1000000 )) MB delivered, loaded ping p50 $off_rtt ms (on: $plain_rtt ms, with ECN $ecn_rtt ms)"
check "CoDel off: nothing marked or dropped" bash -c "test $(marked) -eq 0 && test $(dropped) -eq 0"
check "CoDel off: the loaded ping waits longer than with it on" \
  python3 -c "import sys; sys.exit(0 if float('$off_rtt') > float('$plain_rtt') else 1)"

summary
