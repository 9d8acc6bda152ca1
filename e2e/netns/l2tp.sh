#!/usr/bin/env bash
# End-to-end L2TP (RFC 2661) test in network namespaces this script creates:
#
#   [client-a ns] --veth-- [gateway ns] --veth-- [lan ns: host 192.168.77.2]
#   [client-b ns] --veth--/      (sluice-dataplane --manifests ..., udp/1701)
#
# The gateway and the in-repo LAC are real processes on real sockets (UDP
# 1701, TUN). Plain L2TP (allowUnencrypted: true): IPsec comes later. Needs
# root. Traffic never leaves the namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT

GW=$(mkns gw); LAN=$(mkns lan); CA=$(mkns ca); CB=$(mkns cb)
link "$GW" 10.99.1.1/24 "$CA" 10.99.1.2/24
link "$GW" 10.99.2.1/24 "$CB" 10.99.2.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.200.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.99.1.1
ip -n "$CB" route add default via 10.99.2.1
# A second address on the gateway: replies must leave from the address the LAC talked to.
ip -n "$GW" addr add 10.99.2.100/24 dev "$(ip -n "$GW" -o addr show | awk '/10\.99\.2\.1\// {print $2}')"

M="$WORK/manifests.yaml"
write_manifests() {  # $1: tunnel secret block (or empty)
  cat >"$M.new" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  pptp: { enabled: false }
  l2tp:
    enabled: true
    allowUnencrypted: true
    helloInterval: 2s
$1
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
    keepaliveTimeout: 0s
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData:
  alice: alice-secret
  bob: bob-secret
  tunnel: tunnel-secret
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: alice, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: alice }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: bob, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: bob }
  services: [pptp]
YAML
  mv "$M.new" "$M"
}
write_manifests ""

EP=10.99.1.1:9810
bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --watch-interval 1
GW_PID=$BG_PID
wait_for "$WORK/gateway.log" "gateway ready" 20
check "gateway warns that L2TP is served without IPsec" grep -q "WITHOUT IPsec" "$WORK/gateway.log"

lac() {  # ns logname user password [extra args]
  local ns=$1 name=$2 user=$3 pw=$4; shift 4
  local server; server=$(ip -n "$ns" -4 route show default | awk '{print $3}')
  bg "$ns" "$name" "$CLIENT_BIN" --protocol l2tp --server "$server" --user "$user" --password "$pw" "$@"
}

# 1. One tunnel carrying three sessions; traffic through each.
lac "$CA" alice alice alice-secret --sessions 3 --calls-per-connection 3 --tun slc0 --route 192.168.77.0/24
A_PID=$BG_PID
wait_for "$WORK/alice.log" "^SUMMARY" 30 || true
check "three sessions up over one tunnel" grep -q '^SUMMARY up=3 failed=0' "$WORK/alice.log"
check "no MPPE over L2TP by default" bash -c "[ \$(grep -c '^UP .*encoding=\"none\"' $WORK/alice.log) -eq 3 ]"
check "gateway has one L2TP tunnel" bash -c "[ \$(metric $GW $EP sluice_l2tp_tunnels | cut -d. -f1) -eq 1 ]"
check "metrics: three active l2tp sessions" bash -c \
  "test \$(metric_sum $GW $EP sluice_sessions_active 'protocol=\"l2tp\"') -eq 3"
for a in $(grep -oE '^UP .*address=[0-9.]+' "$WORK/alice.log" | sed 's/.*address=//'); do
  check "ping the LAN host through the session with address $a" \
    ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 -I "$a" 192.168.77.2
done
check "1400-byte ping with DF set" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 -M do -s 1372 192.168.77.2
check "sessions table lists the l2tp sessions" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions | grep -c l2tp | grep -qx 3"

# 2. HELLO keeps an idle tunnel alive (PPP keepalive is off: only HELLO talks).
tx1=$(metric "$GW" "$EP" 'sluice_l2tp_control_messages_total{direction="tx"}')
sleep 7
tx2=$(metric "$GW" "$EP" 'sluice_l2tp_control_messages_total{direction="tx"}')
check "gateway sent HELLOs on the idle tunnel ($tx1 -> $tx2)" test "${tx2%.*}" -ge "$(( ${tx1%.*} + 2 ))"
check "idle tunnel still up and passing traffic" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2
check "alice's client saw no disconnect" bash -c "! grep -q '^DOWN' $WORK/alice.log"

# 2b. Data counts as liveness: while one of its sessions carries traffic, the tunnel sends no
#     HELLO (one may go out as the traffic starts).
tx1=$(metric "$GW" "$EP" 'sluice_l2tp_control_messages_total{direction="tx"}')
ip netns exec "$CA" ping -q -c 35 -i 0.2 -W 2 192.168.77.2 >/dev/null 2>&1
tx2=$(metric "$GW" "$EP" 'sluice_l2tp_control_messages_total{direction="tx"}')
check "no HELLO while the tunnel carries data (control tx $tx1 -> $tx2 over 7 s)" \
  test "${tx2%.*}" -le "$(( ${tx1%.*} + 1 ))"

# 3. Services: bob may only use PPTP.
check "bob (services: [pptp]) is refused over L2TP" bash -c \
  "! ip netns exec $CB $CLIENT_BIN --protocol l2tp --server 10.99.2.1 --user bob --password bob-secret --duration 0 --timeout 15 >$WORK/bob.log 2>&1"
check "gateway counted the refusal as a limit" bash -c \
  "test \$(metric $GW $EP 'sluice_session_setups_total{protocol=\"l2tp\",result=\"limit\"}' | cut -d. -f1) -ge 1"

# 4. Replies leave from the address the LAC talked to (the gateway's second address).
check "a LAC talking to the gateway's second address gets its session" \
  ip netns exec "$CB" "$CLIENT_BIN" --protocol l2tp --server 10.99.2.100 --user alice --password alice-secret --duration 0 --timeout 15

# 5. Data sequencing (Sequencing Required in ICCN): both sides send Ns on data messages.
lac "$CB" seq alice alice-secret --sequencing --tun slc0 --route 192.168.77.0/24
SEQ_PID=$BG_PID
wait_for "$WORK/seq.log" "^(UP|FAILED)" 20 || true
check "sequenced session up" grep -q '^UP' "$WORK/seq.log"
check "ping through the sequenced session" ip netns exec "$CB" ping -c 3 -i 0.2 -W 2 192.168.77.2
kill "$SEQ_PID"; wait "$SEQ_PID" 2>/dev/null || true

# 6. Tunnel authentication and hidden AVPs with a tunnel secret.
n=$(grep -c "configuration applied" "$WORK/gateway.log" || true)
write_manifests "    tunnelSecretRef: { name: passwords, key: tunnel }"
wait_for "$WORK/gateway.log" "configuration applied" 10 || true
sleep 1
check "matching tunnel secret with hidden AVPs: session up" \
  ip netns exec "$CB" "$CLIENT_BIN" --protocol l2tp --server 10.99.2.1 --user alice --password alice-secret --tunnel-secret tunnel-secret --hide-avps --duration 0 --timeout 15
check "wrong tunnel secret: refused" bash -c \
  "! ip netns exec $CB $CLIENT_BIN --protocol l2tp --server 10.99.2.1 --user alice --password alice-secret --tunnel-secret wrong --duration 0 --timeout 15 >$WORK/wrongsecret.log 2>&1"
check "no tunnel secret: refused" bash -c \
  "! ip netns exec $CB $CLIENT_BIN --protocol l2tp --server 10.99.2.1 --user alice --password alice-secret --duration 0 --timeout 15 >$WORK/nosecret.log 2>&1"
check "alice's tunnel survived the reload" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 7. Malformed datagrams are counted and dropped; nothing else is affected.
ip netns exec "$CB" python3 - <<'PY'
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(200):
    s.sendto(os.urandom(i % 40), ("10.99.2.1", 1701))
# A control header whose Length lies, and a data message for an unknown session.
s.sendto(bytes([0xc8, 0x02, 0x40, 0x00, 0, 0, 0, 0, 0, 0, 0, 0]), ("10.99.2.1", 1701))
s.sendto(bytes([0x00, 0x02, 0x12, 0x34, 0x56, 0x78, 0xff, 0x03, 0xc0, 0x21]), ("10.99.2.1", 1701))
PY
sleep 0.5
check "malformed L2TP counted" bash -c \
  "test \$(metric $GW $EP 'sluice_malformed_packets_total{layer=\"l2tp\"}' | cut -d. -f1) -ge 1"
check "alice unaffected by the garbage" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 8. A dead LAC (killed, no StopCCN) is reaped: HELLOs go unanswered, the
#    retry budget runs out, the sessions end and their addresses return to the pool.
used=$(metric "$GW" "$EP" sluice_pool_addresses_used)
check "pool has alice's three addresses leased" test "${used%.*}" -eq 3
kill -9 "$A_PID"
wait_for "$WORK/gateway.log" "L2TP tunnel down|session down" 60 || true
for _ in $(seq 1 60); do
  [ "$(metric "$GW" "$EP" sluice_l2tp_tunnels | cut -d. -f1)" -eq 0 ] && break
  sleep 1
done
check "dead LAC's tunnel reaped" bash -c "[ \$(metric $GW $EP sluice_l2tp_tunnels | cut -d. -f1) -eq 0 ]"
check "its addresses are back in the pool" bash -c "[ \$(metric $GW $EP sluice_pool_addresses_used | cut -d. -f1) -eq 0 ]"
check "no l2tp session left" bash -c \
  "test \$(metric_sum $GW $EP sluice_sessions_active 'protocol=\"l2tp\"') -eq 0"

# 9. Graceful stop: the gateway sends StopCCN to a connected LAC.
lac "$CB" carol alice alice-secret --tunnel-secret tunnel-secret
wait_for "$WORK/carol.log" "^(UP|FAILED)" 20 || true
kill -TERM "$GW_PID"
wait_for "$WORK/carol.log" "^DOWN" 10 || true
check "LAC told its session is down when the gateway stops" grep -q '^DOWN' "$WORK/carol.log"

summary
