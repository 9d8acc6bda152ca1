#!/usr/bin/env bash
# Client mode (issue 22), Sluice to Sluice over PPTP, site to site, in network namespaces
# this script creates:
#
#   [lan-a 192.168.10.2] -- [hq: gateway, 10.90.0.1] ---wan--- [branch: data plane dialling
#                                                               VpnClient, 10.90.0.2] -- [lan-b 192.168.20.2]
#
# The branch data plane dials the HQ gateway from its own manifest file (a VpnClient next to
# its VpnGateway). The two LAN hosts reach each other through the tunnel: the branch routes
# HQ's LAN (`VpnClient.spec.routes`, no masquerade), HQ routes the branch's LAN to the call
# (`VpnUser.spec.routes`). Then: the tunnel comes back by itself after HQ restarts; a wrong
# password backs off with AuthenticationRejected and HQ sees one attempt per `reconnect.max`;
# adding a second VpnClient leaves the first tunnel's call alone. Figures (apply → Connected,
# reconnect after a restart, iperf3 through the tunnel) are printed. Needs root.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT

HQ=$(mkns hq); BR=$(mkns branch); LA=$(mkns lan-a); LB=$(mkns lan-b); RW=$(mkns road)
link "$HQ" 10.90.0.1/24 "$BR" 10.90.0.2/24
link "$HQ" 10.91.0.1/24 "$RW" 10.91.0.2/24
link "$HQ" 192.168.10.1/24 "$LA" 192.168.10.2/24
link "$BR" 192.168.20.1/24 "$LB" 192.168.20.2/24
ip -n "$LA" route add default via 192.168.10.1
ip -n "$LB" route add default via 192.168.20.1

HQ_M="$WORK/hq.yaml"
cat >"$HQ_M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: hq, namespace: default }
spec:
  ppp: { localAddress: 10.201.0.1, addressPool: 10.201.0.0/24 }
---
apiVersion: v1
kind: Secret
metadata: { name: passwords, namespace: default }
stringData: { branch: branch-secret, road: road-secret }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: branch, namespace: default }
spec:
  gatewayRef: { name: hq }
  passwordSecretRef: { name: passwords, key: branch }
  routes: [192.168.20.0/24]
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: road, namespace: default }
spec:
  gatewayRef: { name: hq }
  passwordSecretRef: { name: passwords, key: road }
YAML

# branch_manifest PASSWORD [EXTRA_CLIENT]: the branch's file (rewritten in place to reload).
BR_M="$WORK/branch.yaml"
branch_manifest() {
  cat >"$BR_M.new" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: branch, namespace: default }
spec:
  ppp: { localAddress: 10.202.0.1, addressPool: 10.202.0.0/24 }
---
apiVersion: v1
kind: Secret
metadata: { name: hq-login, namespace: default }
stringData: { username: branch, password: $1 }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: { name: to-hq, namespace: default }
spec:
  gatewayRef: { name: branch }
  protocol: pptp
  connectTo: 10.90.0.1
  credentialsSecretRef: { name: hq-login }
  routes: [192.168.10.0/24]
  masquerade: false
  reconnect: { initial: 1s, max: 8s }
YAML
  if [ "${2:-}" = extra ]; then cat >>"$BR_M.new" <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: { name: nowhere, namespace: default }
spec:
  gatewayRef: { name: branch }
  protocol: pptp
  connectTo: 10.90.0.77
  credentialsSecretRef: { name: hq-login }
  routes: [192.168.99.0/24]
  reconnect: { initial: 1s, max: 4s }
YAML
  fi
  mv "$BR_M.new" "$BR_M"
}

start_hq() {  # logname
  bg "$HQ" "$1" env SLUICE_ADMIN_TOKEN_FILE="$WORK/hq-token" "$SLUICE_BIN" --manifests "$HQ_M"
  HQ_PID=$BG_PID
  wait_for "$WORK/$1.log" "gateway ready" 20
}
hq() { ip netns exec "$HQ" env SLUICE_ADMIN_TOKEN_FILE="$WORK/hq-token" "$SLUICE_BIN" "$@"; }
br() { ip netns exec "$BR" env SLUICE_ADMIN_TOKEN_FILE="$WORK/br-token" "$SLUICE_BIN" "$@"; }
# client FIELD [NAME]: one field of a client tunnel's status on the branch.
client() {
  br clients --json | python3 -c 'import json,sys
rows = [r for r in json.load(sys.stdin) if r["source"] == "default/" + sys.argv[2]]
print(rows[0].get(sys.argv[1]) if rows else "")' "$1" "${2:-to-hq}"
}
# until_phase PHASE SECONDS [NAME]: waits for the tunnel's phase; prints the seconds it took.
until_phase() {
  local t0 now
  t0=$(date +%s.%N)
  while :; do
    [ "$(client phase "${3:-to-hq}" 2>/dev/null)" = "$1" ] && break
    now=$(date +%s.%N)
    if python3 -c "import sys; sys.exit(0 if $now - $t0 > $2 else 1)"; then return 1; fi
    sleep 0.1
  done
  python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')"
}

export HQ BR WORK SLUICE_BIN
export -f hq br client until_phase
start_hq hq
branch_manifest branch-secret
t_apply=$(date +%s.%N)
bg "$BR" branch env SLUICE_ADMIN_TOKEN_FILE="$WORK/br-token" "$SLUICE_BIN" --manifests "$BR_M" --watch-interval 1
BR_PID=$BG_PID
wait_for "$WORK/branch.log" "gateway ready" 20
connected=$(until_phase Connected 20 || echo timeout)
check "the branch dials HQ: Connected" test "$connected" != timeout
apply_to_up=$(python3 -c "print(f'{$(date +%s.%N) - $t_apply:.2f}')")
log "start of the branch data plane → Connected: ${apply_to_up}s (the figure includes its start-up)"

check "the tunnel has addresses from HQ's pool" bash -c "python3 - <<'PY'
import ipaddress, json, os, subprocess
rows = json.loads(subprocess.check_output(['ip', 'netns', 'exec', '$BR', 'env', 'SLUICE_ADMIN_TOKEN_FILE=$WORK/br-token', '$SLUICE_BIN', 'clients', '--json']))
r = rows[0]
assert ipaddress.ip_address(r['local_address']) in ipaddress.ip_network('10.201.0.0/24'), r
assert r['remote_address'] == '10.201.0.1', r
assert r['encoding'].startswith('MPPE 128'), r
PY"
check "branch 'sessions' lists the dialled call with role client" bash -c "br sessions | grep -E '^client +branch +pptp'"
check "branch 'sessions' shows the monitor fields" bash -c "br sessions | grep -E 'default/to-hq +pptp +10.90.0.1:1723 +Connected'"
check "HQ sees the branch as a served session" bash -c "hq sessions | grep -E '^server +branch +pptp'"
check "metrics: one tunnel Connected, one dial connected" bash -c "
  [ \"\$(metric $BR 127.0.0.1:9810 'sluice_client_tunnels{phase=\"Connected\"}')\" = 1 ] &&
  [ \"\$(metric $BR 127.0.0.1:9810 'sluice_client_dials_total{protocol=\"pptp\",result=\"connected\"}')\" = 1 ]"
check "the branch installed HQ's LAN route with its tunnel address as source" \
  bash -c "ip -n $BR route show 192.168.10.0/24 | grep -q 'dev sluice0.*src 10.201.0.'"
check "lan-b pings lan-a through the tunnel" ip netns exec "$LB" ping -c 3 -W 2 -i 0.2 192.168.10.2
check "the tunnel route carries the call's MTU (1400 with MPPE)" \
  bash -c "ip -n $BR route show 192.168.10.0/24 | grep -q 'mtu 1400'"
check "a 1400-byte DF packet from lan-b crosses the tunnel" ip netns exec "$LB" ping -c 2 -W 2 -i 0.2 -M do -s 1372 192.168.10.2
check "a 1401-byte DF packet gets 'fragmentation needed' instead of vanishing" bash -c \
  "ip netns exec $LB ping -c 2 -W 2 -i 0.2 -M do -s 1373 192.168.10.2 2>&1 | grep -qiE 'frag needed|message too long|mtu'"
check "lan-a pings lan-b (HQ routes the branch's LAN: VpnUser.spec.routes)" ip netns exec "$LA" ping -c 3 -W 2 -i 0.2 192.168.20.2
check "lan-a sees lan-b's own address (no masquerade)" bash -c "
  ip netns exec $LA timeout 5 python3 -c 'import socket; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind((\"0.0.0.0\", 7777)); d, a = s.recvfrom(64); print(a[0]); assert a[0] == \"192.168.20.2\"' &
  sleep 0.5; ip netns exec $LB python3 -c 'import socket; socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b\"x\", (\"192.168.10.2\", 7777))'; wait \$!"
# The attacker's view: HQ's side injects a packet whose source is neither HQ's tunnel address
# nor a network routed into the tunnel; the branch must drop it (a server may not pose as
# any host of the branch's site).
spoofed() { metric "$BR" 127.0.0.1:9810 'sluice_dropped_packets_total{reason="spoofed_source"}'; }
ip netns exec "$HQ" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
for i in $(ip -n "$HQ" -o link show | awk -F': ' '{print $2}' | cut -d@ -f1); do
  ip netns exec "$HQ" sysctl -qw "net.ipv4.conf.$i.rp_filter=0" 2>/dev/null || true
done
s0=$(spoofed)
ip netns exec "$LA" python3 -c '
import socket, struct
def csum(b):
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b)); s = (s >> 16) + (s & 0xffff); return ~(s + (s >> 16)) & 0xffff
src, dst = socket.inet_aton("172.16.5.5"), socket.inet_aton("192.168.20.2")
udp = struct.pack("!HHHH", 4444, 9, 8 + 7, 0) + b"spoofed"
h = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 1, 0, 64, 17, 0, src, dst)
h = h[:10] + struct.pack("!H", csum(h)) + h[12:]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
for _ in range(5): s.sendto(h + udp, ("192.168.20.2", 0))'
sleep 0.5
check "the branch drops a packet HQ's side sent from an address outside the routes (5 sent)" \
  test $(( $(spoofed) - s0 )) -ge 5

# iperf3 through the Sluice-to-Sluice tunnel (lan-b → lan-a), and in the same run the
# baseline: a road warrior on the in-repo client (sluice-client, the benchmarks' load client)
# through the same HQ gateway to the same host.
iperf_mbit() {  # NS: the receiver's Mbit/s of a 4 s TCP run to lan-a
  bg "$LA" "iperf3-server-$1" iperf3 -s -1 -B 192.168.10.2
  sleep 0.5
  ip netns exec "$1" iperf3 -c 192.168.10.2 -t 4 -J >"$WORK/iperf-$1.json" 2>/dev/null &&
    python3 -c "import json; print(round(json.load(open('$WORK/iperf-$1.json'))['end']['sum_received']['bits_per_second']/1e6))"
}
if command -v iperf3 >/dev/null; then
  s2s=$(iperf_mbit "$LB" || echo 0)
  check "iperf3 through the Sluice-to-Sluice tunnel moves data" test "$s2s" -gt 0
  bg "$RW" road "$CLIENT_BIN" --server 10.91.0.1 --user road --password road-secret --tun slc0 --route 192.168.10.0/24
  ROAD_PID=$BG_PID
  wait_for "$WORK/road.log" "^(UP|FAILED)" 20 || true
  road=$(iperf_mbit "$RW" || echo 0)
  kill "$ROAD_PID" 2>/dev/null || true; wait "$ROAD_PID" 2>/dev/null || true
  log "FIGURE iperf3 TCP to lan-a, same run: Sluice-to-Sluice (branch data plane) $s2s Mbit/s; in-repo client $road Mbit/s; ratio $(python3 -c "print(f'{$s2s / max($road, 1):.2f}')")"
fi

# HQ restarts: the branch notices, backs off, and comes back by itself.
call_before=$(client call_id)
kill "$HQ_PID"; wait "$HQ_PID" 2>/dev/null || true
check "HQ gone: the branch backs off" bash -c "until_phase BackingOff 15 >/dev/null"
check "the reason is named" bash -c "client last_error | grep -qE 'TunnelDropped|ServerUnreachable'"
check "the tunnel's route left with it" bash -c "! ip -n $BR route show 192.168.10.0/24 | grep -q sluice0"
t_restart=$(date +%s.%N)
start_hq hq-restarted
back=$(until_phase Connected 30 || echo timeout)
check "the tunnel comes back after HQ restarts (within its back-off)" test "$back" != timeout
log "HQ ready → branch Connected again: ${back}s (reconnect.initial 1s, max 8s)"
check "lan-b reaches lan-a again" ip netns exec "$LB" ping -c 2 -W 2 -i 0.2 192.168.10.2
check "a new call (new Call ID or same by chance)" test -n "$(client call_id)"
: "$call_before"

# Hitless reload: a second VpnClient (to a server that does not answer) leaves the first alone.
call=$(client call_id)
branch_manifest branch-secret extra
check "the new client backs off: ServerUnreachable" bash -c "until_phase BackingOff 45 nowhere >/dev/null && client last_error nowhere | grep -q ServerUnreachable"
check "the first tunnel kept its call through the reload" test "$(client call_id)" = "$call"
check "... and stayed Connected" test "$(client phase)" = Connected

# Wrong password: AuthenticationRejected, and HQ sees one attempt per reconnect.max (8 s).
fails() { ip netns exec "$HQ" python3 -c 'import urllib.request
t = urllib.request.urlopen("http://127.0.0.1:9810/metrics").read().decode()
print(int(sum(float(l.split()[-1]) for l in t.splitlines() if l.startswith("sluice_auth_failures_total"))))'; }
branch_manifest wrong-password
check "a wrong password backs off with AuthenticationRejected" bash -c "for i in \$(seq 100); do client last_error | grep -q AuthenticationRejected && exit 0; sleep 0.2; done; exit 1"
check "... phase BackingOff" test "$(client phase)" = BackingOff
check "metrics: the rejected dial is counted by reason" bash -c "
  [ \"\$(metric $BR 127.0.0.1:9810 'sluice_client_dials_total{protocol=\"pptp\",result=\"AuthenticationRejected\"}')\" -ge 1 ]"
f0=$(fails); sleep 12; f1=$(fails)
log "HQ's failed logins while the branch backed off for 12 s: $((f1 - f0))"
check "HQ is not hammered: at most 2 attempts in 12 s (max 8 s)" test $((f1 - f0)) -le 2

# The right password again: dials at once.
branch_manifest branch-secret
again=$(until_phase Connected 20 || echo timeout)
check "a corrected Secret dials at once" test "$again" != timeout

kill "$BR_PID"; wait "$BR_PID" 2>/dev/null || true
check "the branch hangs up on exit (HQ sees no session left)" bash -c "for i in \$(seq 50); do hq sessions | grep -q '^server' || exit 0; sleep 0.1; done; exit 1"
summary
