#!/usr/bin/env bash
# Agent mode end to end, in network namespaces this script creates:
#
#   [client-a ns] --veth-- [gateway ns] --veth-- [lan ns: host 192.168.77.2]
#   [client-b ns] --veth--/   sluice-operator serve-manifests (gRPC, mTLS, 127.0.0.1:50051)
#                             sluice-dataplane agent (config from the operator, never from a file)
#
# Real binaries, real sockets, real PPTP sessions (the in-repo client). Checks: readiness
# follows the first applied config; sessions come up with NT hashes only; the operator sees
# them; the operator is killed and restarted mid-session and no session drops; a user removed
# from the manifests is disconnected and nobody else. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
: "${OPERATOR_BIN:?OPERATOR_BIN must point at the sluice-operator binary}"
trap netns_cleanup EXIT

GW=$(mkns gw); LAN=$(mkns lan); CA=$(mkns ca); CB=$(mkns cb)
link "$GW" 10.99.1.1/24 "$CA" 10.99.1.2/24
link "$GW" 10.99.2.1/24 "$CB" 10.99.2.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.200.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.99.1.1
ip -n "$CB" route add default via 10.99.2.1

M="$WORK/manifests.yaml"
write_manifests() {  # $1: users (space-separated)
  {
    cat <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: vpn }
spec:
  ppp: { localAddress: 10.200.0.1, addressPool: 10.200.0.0/24, dnsServers: [10.200.0.1] }
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: vpn }
stringData: { alice: alice-secret, bob: bob-secret }
YAML
    for u in $1; do
      cat <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: $u, namespace: vpn }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: $u }
YAML
    done
  } >"$M.new"
  mv "$M.new" "$M"
}
write_manifests "alice bob"

"$OPERATOR_BIN" pki --out "$WORK/pki" --gateway vpn/office >/dev/null
OP_EP=127.0.0.1:8080
EP=10.99.1.1:9810
start_operator() {
  bg "$GW" "operator$1" "$OPERATOR_BIN" serve-manifests --manifests "$M" \
    --grpc-listen 127.0.0.1:50051 --http-listen "$OP_EP" --tls-dir "$WORK/pki" --server-name localhost
  OP_PID=$BG_PID
}
readyz() { ip netns exec "$GW" python3 -c 'import sys,urllib.request
try: print(urllib.request.urlopen(sys.argv[1], timeout=2).status)
except Exception as e: print(getattr(e, "code", 0))' "http://$EP/readyz"; }

# The agent starts first: no configuration yet, so not ready.
bg "$GW" agent "$SLUICE_BIN" agent --operator https://localhost:50051 --gateway vpn/office \
  --node node-1 --pod dataplane-1 --tls-dir "$WORK/pki/agent" --metrics-listen "$EP" --report-interval 1
AGENT_PID=$BG_PID
for _ in $(seq 50); do [ "$(readyz)" = 503 ] && break; sleep 0.1; done
check "agent without a configuration is not ready (/readyz 503)" test "$(readyz)" = 503

start_operator 1
for _ in $(seq 100); do [ "$(readyz)" = 200 ] && break; sleep 0.1; done
check "agent is ready once the operator's configuration is applied" test "$(readyz)" = 200
check "operator counts one connected agent" bash -c \
  "test \$(metric $GW $OP_EP sluice_operator_agents_connected | cut -d. -f1) -eq 1"

client() {  # ns logname user password [extra args]
  local ns=$1 name=$2 user=$3 pw=$4; shift 4
  local server; server=$(ip -n "$ns" -4 route show default | awk '{print $3}')
  bg "$ns" "$name" "$CLIENT_BIN" --server "$server" --user "$user" --password "$pw" "$@"
}
client "$CA" alice alice alice-secret --tun slc0 --route 192.168.77.0/24 --route 10.200.0.0/24
wait_for "$WORK/alice.log" "^(UP|FAILED)" 20 || true
check "alice: MS-CHAPv2 + MPPE-128 against NT hashes only" grep -E '^UP .*encoding="MPPE 128 bit, stateless"' "$WORK/alice.log"
check "alice: ping a host behind the gateway" ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 192.168.77.2
client "$CB" bob bob bob-secret --duration 600
wait_for "$WORK/bob.log" "^(UP|FAILED)" 20 || true
check "bob: session up" grep -q '^UP' "$WORK/bob.log"
check "the agent logs no password" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions >/dev/null && ! grep -q 'alice-secret\|bob-secret' $WORK/agent.log"
check "wrong password refused" bash -c \
  "! ip netns exec $CB $CLIENT_BIN --server 10.99.2.1 --user alice --password wrong --duration 0 --timeout 15 >/dev/null 2>&1"

# Operator restart mid-session: traffic keeps flowing while it is away, nothing drops.
a_call=$(ip netns exec "$GW" "$SLUICE_BIN" sessions --json | python3 -c 'import json,sys;print([s["call_id"] for s in json.load(sys.stdin) if s["user"]=="alice"][0])')
kill "$OP_PID"; wait "$OP_PID" 2>/dev/null || true
for _ in $(seq 50); do [ "$(metric "$GW" "$EP" sluice_operator_connected | cut -d. -f1)" = 0 ] && break; sleep 0.1; done
check "agent notices the operator is gone" test "$(metric "$GW" "$EP" sluice_operator_connected | cut -d. -f1)" = 0
check "alice passes traffic while the operator is down" ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "agent stays ready on its last configuration" test "$(readyz)" = 200
start_operator 2
for _ in $(seq 150); do [ "$(metric "$GW" "$EP" sluice_operator_connected | cut -d. -f1)" = 1 ] && break; sleep 0.1; done
check "agent reconnects to the restarted operator" test "$(metric "$GW" "$EP" sluice_operator_connected | cut -d. -f1)" = 1
check "alice's session survived the restart (same call, still up)" bash -c \
  "ip netns exec $GW $SLUICE_BIN sessions --json | python3 -c 'import json,sys;s=[s for s in json.load(sys.stdin) if s[\"user\"]==\"alice\"];assert s and s[0][\"call_id\"]==$a_call and s[0][\"state\"]==\"up\", s'"
check "no client saw a disconnect" bash -c "! grep -q '^DOWN' $WORK/alice.log $WORK/bob.log"
check "alice passes traffic after the restart" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# Remove bob: his session ends, alice's does not.
write_manifests "alice"
wait_for "$WORK/bob.log" "^DOWN" 15 || true
check "bob, removed from the manifests, is disconnected" grep -q '^DOWN' "$WORK/bob.log"
check "alice is untouched by bob's removal" bash -c "! grep -q '^DOWN' $WORK/alice.log"
check "alice still passes traffic" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 192.168.77.2

# A gateway the compile rejects: the agent keeps the previous configuration.
sed -i 's/addressPool: 10.200.0.0\/24/addressPool: 10.200.0.0\/31/' "$M"
wait_for "$WORK/operator2.log" "configuration rejected" 10 || true
check "operator rejects the broken gateway, naming the field" grep -q 'spec.ppp.addressPool' "$WORK/operator2.log"
check "alice still up on the previous configuration" ip netns exec "$CA" ping -c 2 -i 0.2 -W 2 10.200.0.1

kill "$AGENT_PID"
wait_for "$WORK/agent.log" "agent stopped|shut" 10 || true
summary
