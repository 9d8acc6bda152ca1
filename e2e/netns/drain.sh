#!/usr/bin/env bash
# Drain, end to end in network namespaces this script creates:
#
#   [ca ns] --veth-- [gateway ns] --veth-- [lan ns: host 192.168.77.2]
#   [cb ns] --veth--/
#   [cc ns] --veth--/
#
# A draining data plane (`sluice-dataplane drain`, the pod's preStop hook) refuses new
# PPTP and L2TP sessions, keeps the existing ones (traffic flows), reports not-ready, and
# exits by itself once they have ended; with a short drain timeout it closes what is left
# properly (the clients see their session go down) and exits. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT

GW=$(mkns gw); LAN=$(mkns lan); CA=$(mkns ca); CB=$(mkns cb); CC=$(mkns cc)
link "$GW" 10.99.1.1/24 "$CA" 10.99.1.2/24
link "$GW" 10.99.2.1/24 "$CB" 10.99.2.2/24
link "$GW" 10.99.3.1/24 "$CC" 10.99.3.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.200.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.99.1.1
ip -n "$CB" route add default via 10.99.2.1
ip -n "$CC" route add default via 10.99.3.1

M="$WORK/manifests.yaml"
cat >"$M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  l2tp: { enabled: true, allowUnencrypted: true }
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData: { alice: alice-secret, bob: bob-secret, carol: carol-secret }
YAML
for u in alice bob carol; do cat >>"$M" <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: $u, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: $u }
YAML
done

EP=10.99.1.1:9810
start_gateway() {  # logname
  bg "$GW" "$1" "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP"
  GW_PID=$BG_PID
  wait_for "$WORK/$1.log" "gateway ready" 20
}
readyz() { ip netns exec "$GW" python3 -c 'import sys,urllib.request
try: urllib.request.urlopen(sys.argv[1], timeout=5); print(200)
except urllib.error.HTTPError as e: print(e.code)' "http://$EP/readyz"; }
# exited PID SECONDS: the process ended within SECONDS, with status 0.
exited() {
  local i=0
  while kill -0 "$1" 2>/dev/null && [ $i -lt $(( $2 * 10 )) ]; do sleep 0.1; i=$((i + 1)); done
  ! kill -0 "$1" 2>/dev/null && wait "$1"
}

start_gateway gateway
# Two sessions that end by themselves after 15 s: alice over PPTP, bob over L2TP.
bg "$CA" alice "$CLIENT_BIN" --server 10.99.1.1 --user alice --password alice-secret \
  --tun slc0 --route 192.168.77.0/24 --duration 15
bg "$CB" bob "$CLIENT_BIN" --protocol l2tp --server 10.99.2.1 --user bob --password bob-secret \
  --tun slc0 --route 192.168.77.0/24 --duration 15
wait_for "$WORK/alice.log" "^(UP|FAILED)" 20 || true
wait_for "$WORK/bob.log" "^(UP|FAILED)" 20 || true
check "alice (PPTP) and bob (L2TP) are up" bash -c "grep -q '^UP' $WORK/alice.log && grep -q '^UP' $WORK/bob.log"
check "ready before draining" test "$(readyz)" = 200

check "drain: the command reports the two sessions left" bash -c \
  "ip netns exec $GW $SLUICE_BIN drain --timeout 600 | tee /dev/stderr | grep -q 'draining: 2 session'"
check "not ready while draining (the Service stops sending new clients)" test "$(readyz)" = 503
check "sluice_draining is 1" test "$(metric "$GW" "$EP" sluice_draining)" = 1
check "a new PPTP session is refused" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user carol --password carol-secret --duration 0 --timeout 10 >$WORK/carol-pptp.log 2>&1"
check "a new L2TP session is refused" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --protocol l2tp --server 10.99.3.1 --user carol --password carol-secret --duration 0 --timeout 10 >$WORK/carol-l2tp.log 2>&1"
check "both refusals are counted as draining" bash -c \
  "test \"\$(metric $GW $EP 'sluice_session_setups_total{protocol=\"pptp\",result=\"draining\"}')\" = 1 && test \"\$(metric $GW $EP 'sluice_session_setups_total{protocol=\"l2tp\",result=\"draining\"}')\" = 1"
check "alice's session still carries traffic" ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "bob's session still carries traffic" ip netns exec "$CB" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "the gateway is still running with both sessions" bash -c \
  "kill -0 $GW_PID && ip netns exec $GW $SLUICE_BIN sessions --json | python3 -c 'import json,sys; assert len(json.load(sys.stdin)) == 2'"
check "once both sessions have ended, the gateway exits by itself (status 0)" exited "$GW_PID" 40
check "it says it drained" grep -q "drained: no session left" "$WORK/gateway.log"

# Drain timeout: a session that would stay is closed properly at the deadline.
start_gateway gateway2
bg "$CA" alice2 "$CLIENT_BIN" --server 10.99.1.1 --user alice --password alice-secret
A_PID=$BG_PID
wait_for "$WORK/alice2.log" "^(UP|FAILED)" 20 || true
check "alice is up on the second gateway" grep -q '^UP' "$WORK/alice2.log"
check "drain --timeout 2 --wait returns once the gateway is gone" \
  ip netns exec "$GW" timeout 60 "$SLUICE_BIN" drain --timeout 2 --wait
check "the gateway exited at the drain timeout (status 0)" exited "$GW_PID" 10
check "it says why" grep -q "drain timeout" "$WORK/gateway2.log"
check "alice was told her session ended (not left hanging)" wait_for "$WORK/alice2.log" "^DOWN" 10
summary
