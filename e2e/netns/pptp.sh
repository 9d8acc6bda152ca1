#!/usr/bin/env bash
# End-to-end PPTP test in network namespaces this script creates:
#
#   [client-a ns] --veth-- [gateway ns] --veth-- [lan ns: host 192.168.77.2]
#   [client-b ns] --veth--/          (sluice-dataplane --manifests ...)
#   [client-c ns] --veth--/
#
# The gateway and the in-repo client are real processes on real sockets
# (TCP 1723, raw GRE, TUN). Needs root. Traffic never leaves the namespaces.
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
ip -n "$LAN" route add 10.77.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.99.1.1
ip -n "$CB" route add default via 10.99.2.1
ip -n "$CC" route add default via 10.99.3.1

M="$WORK/manifests.yaml"
ALICE_PW=alice-secret
MASQUERADE=false
write_manifests() {  # $1: extra users block
  cat >"$M.new" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  pptp:
    authentication: [mschapv2, mschapv1]
    encryption: require
    mppe: { keyLengths: [128, 40], stateful: allow }
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
    dnsServers: [10.200.0.1, 192.168.77.53]
  nat: { masquerade: $MASQUERADE }
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData:
  alice: $ALICE_PW
  bob: bob-secret
  dave: dave-secret
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: alice, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: alice }
  routes: [10.77.0.0/24]
$1
YAML
  mv "$M.new" "$M"   # atomic: the file watcher never sees half a file
}
user_yaml() {  # name [extra spec line]
  cat <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: $1, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: $1 }
  ${2:-}
YAML
}
applied() { grep -c "configuration applied" "$WORK/gateway.log" || true; }
write_manifests "$(user_yaml bob)"

EP=10.99.1.1:9810
bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --watch-interval 1
GW_PID=$BG_PID
wait_for "$WORK/gateway.log" "gateway ready" 20

client() {  # ns logname user password [extra args]
  local ns=$1 name=$2 user=$3 pw=$4; shift 4
  local server; server=$(ip -n "$ns" -4 route show default | awk '{print $3}')
  bg "$ns" "$name" "$CLIENT_BIN" --server "$server" --user "$user" --password "$pw" "$@"
}

# 1. MS-CHAPv2 + MPPE-128 stateless, traffic through a TUN on the client.
client "$CA" alice alice alice-secret --tun slc0 --route 192.168.77.0/24 --route 10.200.0.0/24
A_PID=$BG_PID
wait_for "$WORK/alice.log" "^(UP|FAILED)" 20 || true
check "alice: session up with MPPE 128 stateless" grep -E '^UP .*encoding="MPPE 128 bit, stateless"' "$WORK/alice.log"
check "alice: address from the pool, DNS from the manifest" grep -E '^UP .*address=10\.200\.0\.[0-9]+ gateway=10\.200\.0\.1 dns=10\.200\.0\.1,192\.168\.77\.53' "$WORK/alice.log"
check "alice: ping the gateway's tunnel address" ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 10.200.0.1
check "alice: ping a host behind the gateway" ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "alice: 1400-byte ping with DF set" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 -M do -s 1372 192.168.77.2
check "gateway: routes alice's spec.routes into the tunnel" bash -c "ip -n $GW route show 10.77.0.0/24 | grep -q sluice0"

# Anti-spoofing: only the session's address and its spec.routes may appear as sources.
ip -n "$CA" addr add 10.200.0.250/32 dev slc0
ip -n "$CA" addr add 10.77.0.1/32 dev slc0
before=$(metric "$GW" "$EP" 'sluice_dropped_packets_total{reason="spoofed_source"}')
check "a foreign source address through alice's tunnel is not forwarded" bash -c \
  "! ip netns exec $CA ping -c 2 -i 0.2 -W 1 -I 10.200.0.250 192.168.77.2"
after=$(metric "$GW" "$EP" 'sluice_dropped_packets_total{reason="spoofed_source"}')
check "gateway counted the spoofed packets ($before -> $after)" test "${after%.*}" -ge "$(( ${before%.*} + 2 ))"
check "a source inside alice's spec.routes is forwarded" \
  ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 -I 10.77.0.1 192.168.77.2
ip -n "$CA" addr del 10.200.0.250/32 dev slc0
ip -n "$CA" addr del 10.77.0.1/32 dev slc0

# 2. Stateful MPPE for bob at the same time.
client "$CB" bob bob bob-secret --mppe-stateful --tun slc0 --route 192.168.77.0/24
B_PID=$BG_PID
wait_for "$WORK/bob.log" "^(UP|FAILED)" 20 || true
check "bob: session up with MPPE 128 stateful" grep -E '^UP .*encoding="MPPE 128 bit, stateful"' "$WORK/bob.log"
check "bob: ping a host behind the gateway (stateful)" ip netns exec "$CB" ping -c 5 -i 0.2 -W 2 192.168.77.2
check "sessions table lists both users with their encoding" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions | tee /dev/stderr | grep -E '^server +alice +pptp +10\.200\.0\.[0-9]+ +10\.99\.1\.2 +up .*MPPE 128 bit, stateless' && ip netns exec $GW $SLUICE_BIN sessions | grep -E '^server +bob .*MPPE 128 bit, stateful'"

# 3. Wrong password: refused (E=691 on the wire), counted, nobody else disturbed.
before=$(metric "$GW" "$EP" 'sluice_auth_failures_total{method="mschapv2"}')
check "carol-with-wrong-password is refused" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user alice --password wrong --duration 0 --timeout 15 > $WORK/wrong.log 2>&1 && grep -qiE 'auth' $WORK/wrong.log"
after=$(metric "$GW" "$EP" 'sluice_auth_failures_total{method="mschapv2"}')
check "gateway counted the authentication failure ($before -> $after)" test "${after%.*}" -gt "${before%.*}"
check "alice unaffected by the failed login" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 4. 40-bit MPPE when the client accepts only 40 bits (this manifest allows it).
check "40-bit MPPE negotiated when the manifest allows it" bash -c \
  "ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user bob --password bob-secret --mppe-bits 40 --duration 0 --timeout 15 >$WORK/forty.log 2>&1; grep -E '^UP .*encoding=\"MPPE 40 bit, stateless\"' $WORK/forty.log"

# 5. Reload (SIGHUP): add dave (maxSessions 1), remove bob, change alice's password;
#    alice's live session must not be touched.
a_call=$(ip netns exec "$GW" "$SLUICE_BIN" sessions --json | python3 -c 'import json,sys;print([s["call_id"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')
ALICE_PW=alice-new
write_manifests "$(user_yaml dave 'maxSessions: 1')"
kill -HUP "$GW_PID"
wait_for "$WORK/bob.log" "^DOWN" 10 || true
check "removed user bob is disconnected on reload" grep -q '^DOWN' "$WORK/bob.log"
client "$CC" dave dave dave-secret --duration 30
wait_for "$WORK/dave.log" "^(UP|FAILED)" 20 || true
check "added user dave can log in after reload" grep -q '^UP' "$WORK/dave.log"
check "alice's session survived the reload (same call, still up)" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions --json | python3 -c 'import json,sys;s=[s for s in json.load(sys.stdin) if s[\"user\"]==\"alice\"];assert s and s[0][\"call_id\"]==$a_call and s[0][\"state\"]==\"up\", s'"
check "alice still passes traffic after the reload" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2
check "alice's client saw no disconnect" bash -c "! grep -q '^DOWN' $WORK/alice.log"
check "alice's old password no longer works for a new login" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user alice --password alice-secret --duration 0 --timeout 15 >/dev/null 2>&1"
check "alice's new password works for a new login" \
  ip netns exec "$CC" "$CLIENT_BIN" --server 10.99.3.1 --user alice --password alice-new --duration 0 --timeout 15
check "dave's second session is refused (maxSessions: 1)" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user dave --password dave-secret --duration 0 --timeout 15 >$WORK/dave2.log 2>&1"
check "gateway counted the limit refusal" bash -c \
  "test \$(metric $GW $EP 'sluice_session_setups_total{protocol=\"pptp\",result=\"limit\"}' | cut -d. -f1) -ge 1"

# 6. Reload by file change alone (no signal): masquerade the pool; the LAN host
#    loses its route back to the pool, so only masquerade lets alice reach it.
n=$(applied)
MASQUERADE=true
write_manifests "$(user_yaml dave 'maxSessions: 1')"
for _ in $(seq 50); do [ "$(applied)" -gt "$n" ] && break; sleep 0.1; done
ip -n "$LAN" route del 10.200.0.0/24
check "file change reloads the configuration without a signal" test "$(applied)" -gt "$n"
check "masquerade: alice reaches the LAN host with no route back to the pool" \
  ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 7. A bad manifest on reload is rejected; the running config stays.
printf '%s\n' "kind: VpnGateway" "apiVersion: sluice.dev/v1alpha1" "metadata: {name: office}" \
  "spec: {ppp: {localAddress: nope, addressPool: 10.200.0.0/24}}" >"$M.new"
mv "$M.new" "$M"
kill -HUP "$GW_PID"
wait_for "$WORK/gateway.log" "configuration rejected" 10 || true
check "bad manifest rejected with a message naming the field" grep -q 'VpnGateway/office: spec.ppp.localAddress' "$WORK/gateway.log"
check "alice still up after the rejected reload" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 10.200.0.1
check "reload counters: ok and rejected" bash -c \
  "test \$(metric $GW $EP 'sluice_config_reloads_total{result=\"rejected\"}' | cut -d. -f1) -ge 1"

check "metrics expose active sessions and bytes" bash -c \
  "test \$(metric_sum $GW $EP sluice_sessions_active 'protocol=\"pptp\"') -ge 1 && http $GW http://$EP/metrics | grep -E '^sluice_tunnel_bytes_total\{direction=\"rx\"\} [1-9]'"

summary
