#!/usr/bin/env bash
# The Grafana dashboard (charts/sluice/dashboards/sluice.json) against real metrics, in
# network namespaces this script creates:
#
#   [ca: PPTP alice, MPPE-128] --\
#   [cb: L2TP/IPsec bob]  --------[gw: sluice-dataplane (PPTP + L2TP/IPsec), Prometheus]-- [lan 192.168.77.2]
#   [cc: PPTP dave 40-bit, wrong      |
#    password, a killed LAC, garbage,  +--[ag: sluice-operator serve-manifests + sluice-dataplane agent]
#    a lone IKE Main Mode message]
#
# Everything a panel shows is made to happen: sessions of both protocols with traffic
# (ping through the tunnels), a refused login, drops and malformed packets, a LAC
# killed without a word (its L2TP control messages go unacknowledged and are
# retransmitted), a half-open IKE SA, a configuration reload, and the operator serving
# an agent. A real Prometheus (Debian package prometheus) scrapes the gateway, the agent
# and the operator every second; then dashboard_check.py runs every panel's queries
# (and the template variables' queries) with Grafana's variables expanded and checks
# that each returns data. One line per panel. Needs root. Traffic never leaves the
# namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
: "${OPERATOR_BIN:?OPERATOR_BIN must point at the sluice-operator binary}"
PROMETHEUS_BIN=${PROMETHEUS_BIN:-/usr/bin/prometheus}
DASHBOARD=${DASHBOARD:-$here/../../charts/sluice/dashboards/sluice.json}
trap netns_cleanup EXIT

if [ ! -x "$PROMETHEUS_BIN" ]; then
  log "$PROMETHEUS_BIN not found (apt-get install --no-install-recommends prometheus)"
  exit 1
fi

GW=$(mkns gw); LAN=$(mkns lan); CA=$(mkns ca); CB=$(mkns cb); CC=$(mkns cc); AG=$(mkns ag)
link "$GW" 10.99.1.1/24 "$CA" 10.99.1.2/24
link "$GW" 10.99.2.1/24 "$CB" 10.99.2.2/24
link "$GW" 10.99.3.1/24 "$CC" 10.99.3.2/24
link "$GW" 10.99.9.1/24 "$AG" 10.99.9.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.200.0.0/24 via 192.168.77.1
ip -n "$CA" route add default via 10.99.1.1
ip -n "$CB" route add default via 10.99.2.1
ip -n "$CC" route add default via 10.99.3.1

# ------------------------------------------------------------ standalone gateway
M="$WORK/manifests.yaml"
PER_USER="  metrics: { perUser: true }"
write_manifests() {  # $1: extra users (space-separated)
  {
    cat <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
$PER_USER
  pptp:
    encryption: require
    mppe: { keyLengths: [128, 40] }
  l2tp:
    enabled: true
    helloInterval: 2s
    ipsec:
      preSharedKeySecretRef: { name: passwords, key: psk }
      dpd: { delay: 5s, timeout: 15s }
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData:
  psk: correct-horse-battery
  alice: alice-secret
  bob: bob-secret
  carol: carol-secret
  dave: dave-secret
  erin: erin-secret
YAML
    for u in alice bob carol dave $1; do
      cat <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: $u, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: passwords, key: $u }
YAML
    done
  } >"$M.new"
  mv "$M.new" "$M"
}
write_manifests ""
# spec.metrics.perUser is newer than some builds: without it the Users panels have no data.
if ! "$SLUICE_BIN" check -f "$M" >"$WORK/manifest-check.log" 2>&1 && grep -q 'spec.metrics' "$WORK/manifest-check.log"; then
  log "this sluice-dataplane does not know spec.metrics.perUser: running without per-user metrics"
  PER_USER=""
  write_manifests ""
fi

EP=10.99.1.1:9810
bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --watch-interval 1
wait_for "$WORK/gateway.log" "gateway ready" 20

# ------------------------------------------------------------ operator + agent
# The same pairing as agent.sh, in its own namespace (its data plane binds the same
# ports as the standalone gateway): the operator's /metrics and the agent's are scraped too.
OM="$WORK/operator-manifests.yaml"
write_operator_manifests() {  # $1: users (space-separated)
  {
    cat <<'YAML'
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: vpn }
spec:
  ppp: { localAddress: 10.201.0.1, addressPool: 10.201.0.0/24 }
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
  } >"$OM.new"
  mv "$OM.new" "$OM"
}
write_operator_manifests alice
"$OPERATOR_BIN" pki --out "$WORK/pki" --gateway vpn/office >/dev/null
OP_EP=10.99.9.2:8080
AG_EP=10.99.9.2:9810
bg "$AG" operator "$OPERATOR_BIN" serve-manifests --manifests "$OM" \
  --grpc-listen 127.0.0.1:50051 --http-listen "$OP_EP" --tls-dir "$WORK/pki" --server-name localhost
OP_PID=$BG_PID
bg "$AG" agent "$SLUICE_BIN" agent --operator https://localhost:50051 --gateway vpn/office \
  --node node-1 --pod dataplane-1 --tls-dir "$WORK/pki/agent" --metrics-listen "$AG_EP" --report-interval 1

# ------------------------------------------------------------ Prometheus
PROM=127.0.0.1:9090
cat >"$WORK/prometheus.yml" <<YAML
global: { scrape_interval: 1s, scrape_timeout: 1s, evaluation_interval: 1s }
scrape_configs:
  - job_name: sluice-dataplane
    static_configs: [{ targets: ["$EP", "$AG_EP"] }]
  - job_name: sluice-operator
    static_configs: [{ targets: ["$OP_EP"] }]
YAML
bg "$GW" prometheus "$PROMETHEUS_BIN" --config.file="$WORK/prometheus.yml" \
  --storage.tsdb.path="$WORK/tsdb" --web.listen-address="$PROM" --log.level=warn
T0=$(date +%s)
# Events before Prometheus' first scrape of a series would be invisible to rate().
check "Prometheus scrapes the gateway, the agent and the operator" \
  ip netns exec "$GW" python3 "$here/dashboard_check.py" --prometheus "http://$PROM" --dashboard "$DASHBOARD" \
  --after "$T0" --settle 0 --timeout 20 --wait-only

agents() { metric "$GW" "$OP_EP" sluice_operator_agents_connected | cut -d. -f1; }
for _ in $(seq 100); do [ "$(agents)" = 1 ] && break; sleep 0.1; done
check "operator serves one agent" test "$(agents)" = 1

# ------------------------------------------------------------ sessions and traffic
client() {  # ns logname user password [extra args]
  local ns=$1 name=$2 user=$3 pw=$4; shift 4
  local server; server=$(ip -n "$ns" -4 route show default | awk '{print $3}')
  bg "$ns" "$name" "$CLIENT_BIN" --server "$server" --user "$user" --password "$pw" "$@"
}
lac() {  # ns logname user password [extra args]: L2TP/IPsec
  client "$@" --protocol l2tp --ipsec-psk correct-horse-battery
}

client "$CA" alice alice alice-secret --tun slc0 --route 192.168.77.0/24
lac "$CB" bob bob bob-secret --tun slc0 --route 192.168.77.0/24
client "$CC" dave dave dave-secret --mppe-bits 40 --duration 600
for f in alice bob dave; do wait_for "$WORK/$f.log" "^(UP|FAILED)" 30 || true; done
check "alice: PPTP session up (MPPE 128)" grep -qE '^UP .*MPPE 128' "$WORK/alice.log"
check "bob: L2TP/IPsec session up" grep -q '^UP' "$WORK/bob.log"
check "dave: PPTP session up (MPPE 40)" grep -qE '^UP .*MPPE 40' "$WORK/dave.log"
check "alice: ping through the PPTP tunnel" ip netns exec "$CA" ping -c 5 -i 0.2 -W 2 -s 1000 192.168.77.2
check "bob: ping through the L2TP/IPsec tunnel" ip netns exec "$CB" ping -c 5 -i 0.2 -W 2 -s 1000 192.168.77.2

check "wrong password is refused" bash -c \
  "! ip netns exec $CC $CLIENT_BIN --server 10.99.3.1 --user alice --password wrong --duration 0 --timeout 10 >$WORK/wrong.log 2>&1"

# A LAC that dies without StopCCN: the gateway's HELLO (every 2 s here) goes unacknowledged
# and is retransmitted.
lac "$CC" carol carol carol-secret
CAROL_PID=$BG_PID
wait_for "$WORK/carol.log" "^(UP|FAILED)" 30 || true
check "carol: L2TP/IPsec session up (to be killed)" grep -q '^UP' "$WORK/carol.log"
kill -9 "$CAROL_PID"; wait "$CAROL_PID" 2>/dev/null || true

# Garbage: GRE for a call that does not exist, broken GRE, random UDP to L2TP and IKE.
check "garbage sent (GRE, L2TP, IKE)" ip netns exec "$CC" python3 - <<'PY'
import os, socket, struct
gw = "10.99.3.1"
g = socket.socket(socket.AF_INET, socket.SOCK_RAW, 47)
for seq in range(5):
    # Enhanced GRE (RFC 2637): K and S bits, version 1, PPP, no payload, call ID 0xbeef.
    g.sendto(struct.pack("!BBHHHI", 0x30, 0x81, 0x880B, 0, 0xBEEF, seq), (gw, 0))
    g.sendto(os.urandom(3 + seq), (gw, 0))
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(40):
    u.sendto(os.urandom(1 + i % 30), (gw, 1701))
    u.sendto(os.urandom(1 + i % 60), (gw, 500))
PY

# A lone IKE Main Mode message 1: the gateway answers with message 2 and keeps the
# exchange half-open (until its 30 s timeout), retransmitting its answer meanwhile.
check "a lone IKE Main Mode message 1 is answered (half-open IKE SA)" ip netns exec "$CC" python3 - <<'PY'
import os, socket, struct
def attr(t, v):
    return struct.pack("!HH", 0x8000 | t, v)
def transform(num, enc, keylen, hash_, group, last):
    a = attr(1, enc) + (attr(14, keylen) if keylen else b"") + attr(2, hash_) + attr(3, 1) + attr(4, group)
    a += attr(11, 1) + attr(12, 3600)          # lifetime: 3600 seconds; auth 1 = pre-shared key
    body = struct.pack("!BBH", num, 1, 0) + a  # transform number, KEY_IKE
    return struct.pack("!BBH", 0 if last else 3, 0, 4 + len(body)) + body
# AES-256/128 x SHA-256/SHA-1 x MODP2048/1024 (RFC 2409 Appendix A numbers).
offers = [(7, 256, 4, 14), (7, 128, 4, 14), (7, 256, 2, 14), (7, 128, 2, 14), (7, 256, 2, 2), (7, 128, 2, 2)]
ts = b"".join(transform(i + 1, *o, last=i == len(offers) - 1) for i, o in enumerate(offers))
prop = struct.pack("!BBHBBBB", 0, 0, 8 + len(ts), 1, 1, 0, len(offers)) + ts  # proposal 1, PROTO_ISAKMP
sa = struct.pack("!HHII", 0, 12 + len(prop), 1, 1) + prop                     # DOI IPsec, SIT_IDENTITY_ONLY
cky_i = os.urandom(8)
msg = cky_i + bytes(8) + struct.pack("!BBBBII", 1, 0x10, 2, 0, 0, 28 + len(sa)) + sa
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(5)
s.sendto(msg, ("10.99.3.1", 500))
reply, _ = s.recvfrom(4096)
assert reply[:8] == cky_i and reply[8:16] != bytes(8) and reply[18] == 2, reply.hex()
print("Main Mode message 2, responder cookie", reply[8:16].hex())
PY

# A configuration reload (a user added), counted by sluice_config_reloads_total.
n=$(grep -c "configuration applied" "$WORK/gateway.log" || true)
write_manifests "erin"
for _ in $(seq 50); do [ "$(grep -c "configuration applied" "$WORK/gateway.log" || true)" -gt "$n" ] && break; sleep 0.1; done
check "the gateway reloaded the changed manifest" test "$(grep -c "configuration applied" "$WORK/gateway.log" || true)" -gt "$n"

# The operator publishes a changed configuration; the agent applies and ACKs it.
sent() { metric "$GW" "$OP_EP" sluice_operator_configs_sent_total | cut -d. -f1; }
n=$(sent)
write_operator_manifests "alice bob"
kill -HUP "$OP_PID"
for _ in $(seq 50); do [ "$(sent)" -gt "$n" ] && break; sleep 0.1; done
check "the operator sent the agent its changed configuration" test "$(sent)" -gt "$n"

# More traffic, and the dead LAC's retransmissions (HELLO after 2 s idle, resent after 1 s).
ip netns exec "$CA" ping -c 3 -i 0.2 -W 2 192.168.77.2 >/dev/null || true
ip netns exec "$CB" ping -c 3 -i 0.2 -W 2 192.168.77.2 >/dev/null || true
retrans() { http "$GW" "http://$EP/metrics" | awk '/^sluice_retransmissions_total/ { s += $2 } END { print int(s) }'; }
for _ in $(seq 50); do [ "$(retrans)" -gt 0 ] && break; sleep 0.2; done
check "the gateway retransmitted to the dead LAC (sluice_retransmissions_total)" test "$(retrans)" -gt 0
check "alice's and bob's sessions are still up" bash -c "! grep -q '^DOWN' $WORK/alice.log $WORK/bob.log"

# ------------------------------------------------------------ the dashboard
# Rates cover the whole run (as a dashboard over the test's time range would show it);
# the checker first waits for a scrape of every target after the last event.
window="$(( $(date +%s) - T0 + 5 ))s"
check "dashboard_check.py ran (Prometheus up, every target scraped after the last event)" \
  ip netns exec "$GW" python3 "$here/dashboard_check.py" --prometheus "http://$PROM" --dashboard "$DASHBOARD" \
  --rate-interval "$window" --after "$(date +%s.%N)" --timeout 20 --results "$WORK/panels"
panel() { cat "$WORK/panels/panel-$1.txt"; [ "$2" = ok ]; }
if [ -f "$WORK/panels/panels.tsv" ]; then
  while IFS=$'\t' read -r id status title; do
    check "dashboard $title" panel "$id" "$status"
  done <"$WORK/panels/panels.tsv"
  while IFS= read -r note; do log "note: $note"; done <"$WORK/panels/notes.txt"
fi

summary
