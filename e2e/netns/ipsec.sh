#!/usr/bin/env bash
# End-to-end L2TP/IPsec test in network namespaces this script creates:
#
#   [c0 10.98.1.2] ----------------------------- [gateway 10.98.1.1 / 10.98.3.1] -- [lan 192.168.77.2]
#   [c1 10.0.1.2] --\                                 (sluice-dataplane: IKE udp/500,
#                    [nat: masquerade to 10.98.3.2] --  NAT-T udp/4500, raw ESP, L2TP)
#   [c2 10.0.2.2] --/
#   (c3: a second direct client, c4: a third client behind the NAT, for other proposals)
#
# c0 reaches the gateway directly (raw ESP, IP protocol 50); c1 and c2 sit behind one
# source NAT (nftables masquerade), so both arrive from 10.98.3.2 and must float to UDP
# 4500 with their own NAT ports, IKE SAs, ESP SAs and L2TP tunnels. The gateway and the
# in-repo client (IKEv1 initiator + ESP + LAC) are real processes on real sockets. Needs
# root and nft. Traffic never leaves the namespaces.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
trap netns_cleanup EXIT

GW=$(mkns gw); LAN=$(mkns lan); C0=$(mkns c0); NAT=$(mkns nat); C1=$(mkns c1); C2=$(mkns c2)
C3=$(mkns c3); C4=$(mkns c4)
link "$GW" 10.98.1.1/24 "$C0" 10.98.1.2/24
link "$GW" 10.98.4.1/24 "$C3" 10.98.4.2/24
link "$NAT" 10.0.4.1/24 "$C4" 10.0.4.2/24
link "$GW" 10.98.3.1/24 "$NAT" 10.98.3.2/24
link "$NAT" 10.0.1.1/24 "$C1" 10.0.1.2/24
link "$NAT" 10.0.2.1/24 "$C2" 10.0.2.2/24
link "$GW" 192.168.77.1/24 "$LAN" 192.168.77.2/24
ip -n "$LAN" route add 10.200.0.0/24 via 192.168.77.1
ip -n "$C0" route add default via 10.98.1.1
ip -n "$C1" route add default via 10.0.1.1
ip -n "$C2" route add default via 10.0.2.1
ip -n "$C3" route add default via 10.98.4.1
ip -n "$C4" route add default via 10.0.4.1
ip netns exec "$NAT" sysctl -qw net.ipv4.ip_forward=1
ip netns exec "$NAT" nft -f - <<'NFT'
table ip nat {
  chain post { type nat hook postrouting priority 100; oifname != "lo" ip saddr 10.0.0.0/16 masquerade; }
}
NFT

M="$WORK/manifests.yaml"
cat >"$M" <<'YAML'
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: office, namespace: default }
spec:
  pptp: { enabled: false }
  l2tp:
    enabled: true
    ipsec:
      preSharedKeySecretRef: { name: vpn, key: psk }
      certificateSecretRef: { name: vpn-cert }
      clientCaSecretRef: { name: vpn-cert }
      dpd: { delay: 5s, timeout: 15s }
      espLifetime: 1m
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
    keepaliveTimeout: 0s
---
apiVersion: v1
kind: Secret
metadata: { name: vpn, namespace: default }
stringData:
  psk: correct-horse-battery
  alice: alice-secret
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: alice, namespace: default }
spec:
  gatewayRef: { name: office }
  passwordSecretRef: { name: vpn, key: alice }
  maxSessions: 10
YAML

# The gateway's certificate (RSA signatures) from the test fixtures of sluice-ike, as a
# kubernetes.io/tls Secret with the client CA beside it, as cert-manager issues them.
CERTS=$(cd "$here/../../dataplane/ike/tests/certs" && pwd)
indent() { sed 's/^/    /' "$1"; }
cat >>"$M" <<YAML
---
apiVersion: v1
kind: Secret
metadata: { name: vpn-cert, namespace: default }
type: kubernetes.io/tls
stringData:
  tls.crt: |
$(indent "$CERTS/gateway-chain.pem")
  tls.key: |
$(indent "$CERTS/gateway.key")
  ca.crt: |
$(indent "$CERTS/ca.pem")
YAML

EP=10.98.1.1:9811
bg "$GW" gateway "$SLUICE_BIN" --manifests "$M" --metrics-listen "$EP" --watch-interval 1
GW_PID=$BG_PID
wait_for "$WORK/gateway.log" "gateway ready" 20
check "gateway starts the IKEv1 responder and the ESP fast path" \
  grep -q "IKEv1 responder and ESP fast path started" "$WORK/gateway.log"

client() {  # ns logname [extra args]: an L2TP/IPsec client toward the gateway
  local ns=$1 name=$2; shift 2
  local server=10.98.1.1
  [ "$ns" = "$C0" ] || server=10.98.3.1
  bg "$ns" "$name" "$CLIENT_BIN" --protocol l2tp --server "$server" --user alice \
    --password alice-secret --ipsec-psk correct-horse-battery "$@"
}
ike_sas() { metric "$GW" "$EP" sluice_ipsec_ike_sas | cut -d. -f1; }
# glog PATTERN: grep the gateway log without its colour codes.
# (Not a pipe: under pipefail, grep -q exiting early would fail it with SIGPIPE.)
glog() { local clean; clean=$(sed 's/\x1b\[[0-9;]*m//g' "$WORK/gateway.log"); grep -E "$@" <<<"$clean"; }
export WORK; export -f glog

# 1. Plain L2TP is refused: L2TP is served only inside IPsec.
check "plain L2TP (no IPsec) gets no session" bash -c \
  "! ip netns exec $C3 $CLIENT_BIN --protocol l2tp --server 10.98.4.1 --user alice --password alice-secret --duration 0 --timeout 6 >$WORK/plain.log 2>&1"
check "the plain L2TP was dropped and counted" bash -c \
  "test \$(metric $GW $EP 'sluice_dropped_packets_total{reason=\"l2tp_not_under_esp\"}' | cut -d. -f1) -ge 1"

# 2. A direct client: raw ESP.
client "$C0" c0 --tun slc0 --route 192.168.77.0/24
C0_PID=$BG_PID
wait_for "$WORK/c0.log" "^(UP|FAILED)" 30 || true
check "direct client: session up over L2TP/IPsec" grep -q '^UP' "$WORK/c0.log"
check "direct client: raw ESP (no NAT, no UDP encapsulation)" glog -q 'ESP SAs installed.*udp_encap=false'
check "direct client: ping the LAN host through IPsec" ip netns exec "$C0" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "direct client: 1400-byte ping with DF set" ip netns exec "$C0" ping -c 2 -i 0.2 -W 2 -M do -s 1300 192.168.77.2
# A ping every 50 ms from the direct client until after the gateway's own rekey (step 10):
# none may go missing across the switch to the new ESP SAs.
bg "$C0" c0-ping ping -i 0.05 -W 2 192.168.77.2
C0_PING=$BG_PID

# 3. Two clients behind one NAT at once: UDP 4500, one IKE SA each.
client "$C1" c1 --tun slc1 --route 192.168.77.0/24
C1_PID=$BG_PID
client "$C2" c2 --tun slc2 --route 192.168.77.0/24 --ike-proposal aes256-sha256-modp2048 --esp-proposal aes256-sha256
C2_PID=$BG_PID
wait_for "$WORK/c1.log" "^(UP|FAILED)" 30 || true
wait_for "$WORK/c2.log" "^(UP|FAILED)" 30 || true
check "NAT client 1: session up" grep -q '^UP' "$WORK/c1.log"
check "NAT client 2: session up" grep -q '^UP' "$WORK/c2.log"
check "NAT clients: UDP-encapsulated ESP" bash -c "[ \$(glog -c 'ESP SAs installed.*udp_encap=true') -ge 2 ]"
check "gateway holds three IKE SAs" bash -c "[ \$(metric $GW $EP sluice_ipsec_ike_sas | cut -d. -f1) -eq 3 ]"
check "gateway holds three L2TP tunnels" bash -c "[ \$(metric $GW $EP sluice_l2tp_tunnels | cut -d. -f1) -eq 3 ]"
check "NAT client 1: ping through IPsec" ip netns exec "$C1" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "NAT client 2: ping through IPsec" ip netns exec "$C2" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "both NAT clients' IKE SAs come from the NAT's address" bash -c \
  "[ \$(glog -c 'IKE SA up.*peer=10.98.3.2') -ge 2 ]"

# 4. Other proposals: 3DES/SHA-1/MODP1024 (Windows' default) and AES-GCM with PFS.
check "3des-sha1-modp1024 + 3des-sha1" \
  ip netns exec "$C3" "$CLIENT_BIN" --protocol l2tp --server 10.98.4.1 --user alice --password alice-secret \
  --ipsec-psk correct-horse-battery --ike-proposal 3des-sha1-modp1024 --esp-proposal 3des-sha1 --duration 0 --timeout 20 \
  >"$WORK/p3des.log" 2>&1
check "aes128-sha1-ecp256 + aes128gcm16 with PFS (modp2048)" \
  ip netns exec "$C4" "$CLIENT_BIN" --protocol l2tp --server 10.98.3.1 --user alice --password alice-secret \
  --ipsec-psk correct-horse-battery --ike-proposal aes128-sha1-ecp256 --esp-proposal aes128gcm16-modp2048 --duration 0 --timeout 20 \
  >"$WORK/pgcm.log" 2>&1

# 4b. RSA signatures with X.509 certificates (the gateway offers PSK and certificates at
#     once; the client's proposal decides), from behind the NAT.
cat "$CERTS/alice.pem" "$CERTS/int.pem" >"$WORK/alice-chain.pem"
check "RSA signatures: a client certificate from the CA gets a session (behind NAT)" \
  ip netns exec "$C4" "$CLIENT_BIN" --protocol l2tp --server 10.98.3.1 --user alice --password alice-secret \
  --ipsec-cert "$WORK/alice-chain.pem" --ipsec-key "$CERTS/alice.key" --ipsec-ca "$CERTS/ca.pem" \
  --duration 0 --timeout 20 >"$WORK/cert.log" 2>&1
check "the gateway names the client by its certificate's subject" glog -q "IKE SA up.*CN=alice"
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$WORK/eve.key" -out "$WORK/eve.pem" \
  -subj "/CN=eve" -days 2 >/dev/null 2>&1
check "a certificate from another CA gets no session" bash -c \
  "! ip netns exec $C3 $CLIENT_BIN --protocol l2tp --server 10.98.4.1 --user alice --password alice-secret --ipsec-cert $WORK/eve.pem --ipsec-key $WORK/eve.key --ipsec-ca $CERTS/ca.pem --duration 0 --timeout 6 >$WORK/eve.log 2>&1"
check "the refusal names the reason" glog -q "IKE authentication failed.*client certificate refused"

# 5. A wrong pre-shared key is refused and logged.
check "wrong pre-shared key: no session" bash -c \
  "! ip netns exec $C3 $CLIENT_BIN --protocol l2tp --server 10.98.4.1 --user alice --password alice-secret --ipsec-psk wrong-key --duration 0 --timeout 8 >$WORK/wrongpsk.log 2>&1"
check "gateway logged the authentication failure" grep -q "IKE authentication failed" "$WORK/gateway.log"

# 6. Garbage on the IKE and NAT-T ports is counted and dropped; sessions unaffected.
ip netns exec "$C0" python3 - <<'PY'
import os, socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(300):
    s.sendto(os.urandom(i % 90), ("10.98.1.1", 500))
    s.sendto(os.urandom(1 + i % 90), ("10.98.1.1", 4500))
PY
sleep 0.5
check "ESP garbage on 4500 dropped and counted" bash -c \
  "test \$(http $GW http://$EP/metrics | grep -E '^sluice_(dropped|malformed)_packets_total\{(reason=\"esp_|layer=\"esp)' | awk '{s+=\$2} END {print int(s)}') -ge 1"
check "sessions survive the garbage" ip netns exec "$C1" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 6b. NAT rebinding (RFC 3948 §2.3). NAT client 1's mapping is lost and re-made on another
#     public port mid-session; the gateway follows it on its first authenticated ESP from
#     there. First what must move nothing: a NAT keep-alive, forged ESP (bad ICV) and a
#     replayed authentic packet, each from a new port of the NAT's address.
moves() { metric "$GW" "$EP" sluice_ipsec_peer_moves_total | cut -d. -f1; }
spis=$(glog -o 'peer=10\.98\.3\.2:[0-9]+ spi_in=0x[0-9a-f]+' | sed 's/.*spi_in=//' | sort -u | tr '\n' ' ')
ip netns exec "$C1" ping -c 15 -i 0.2 -W 1 192.168.77.2 >/dev/null 2>&1 &
PING=$!
ip netns exec "$NAT" python3 - "$spis" <<'PY'
import os, socket, struct, sys
gw = ("10.98.3.1", 4500)
def sender(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("10.98.3.2", port))
    return s
sender(43000).sendto(b"\xff", gw)                      # NAT keep-alive (RFC 3948 §2.3)
for spi in sys.argv[1].split():                        # forged ESP: right SPI, newest seq, bad ICV
    sender(43001).sendto(struct.pack("!II", int(spi, 16), 0x7fffffff) + os.urandom(64), gw)
# Replay: an authentic ESP packet of the session, captured after the NAT, sent again.
# (ETH_P_ALL: only it sees outgoing frames, here after the NAT rewrote them.)
cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
cap.settimeout(5)
while True:
    frame = cap.recv(65535)
    ip = frame[14:]
    if frame[12:14] != b"\x08\x00":
        continue
    ihl = (ip[0] & 15) * 4
    if ip[9] != 17 or ip[12:16] != socket.inet_aton("10.98.3.2"):
        continue
    udp = ip[ihl:]
    if udp[2:4] == struct.pack("!H", 4500) and len(udp) > 40 and udp[8:12] != b"\0\0\0\0":
        break
sender(43002).sendto(bytes(udp[8:]), gw)
PY
wait "$PING" || true
sleep 0.5
check "keep-alive, forged and replayed ESP from new ports move nobody" test "$(moves)" -eq 0
check "the forged ESP failed its ICV, the replay its window" bash -c \
  "test \$(metric $GW $EP 'sluice_dropped_packets_total{reason=\"esp_integrity\"}' | cut -d. -f1) -ge 1 \
   && test \$(metric $GW $EP 'sluice_dropped_packets_total{reason=\"esp_replay\"}' | cut -d. -f1) -ge 1"
ip netns exec "$C1" ping -c 40 -i 0.2 -W 1 192.168.77.2 >"$WORK/rebind-ping.log" 2>&1 &
PING=$!
sleep 2
ip netns exec "$NAT" nft insert rule ip nat post ip saddr 10.0.1.2 udp sport 4500 masquerade to :41000-41999
ip netns exec "$NAT" conntrack -D -s 10.0.1.2 -p udp >/dev/null 2>&1 || true
wait "$PING" || true
received=$(grep -oE '[0-9]+ received' "$WORK/rebind-ping.log" | cut -d' ' -f1)
check "NAT client 1 pings on across the new mapping ($received/40 replies)" test "${received:-0}" -ge 36
check "the gateway followed it on authenticated ESP" glog -q 'IPsec client moved \(NAT rebinding, learned from ESP\).*peer=10\.98\.3\.2:41[0-9]{3}'
check "its L2TP tunnel followed" glog -q 'L2TP peer followed to its new address.*to=10\.98\.3\.2:41'
check "one move counted" test "$(moves)" -ge 1
# Idle past the DPD timeout (delay 5 s + timeout 15 s): R-U-THERE must reach the new port.
# (Counted against the lines so far: a client of an earlier step may have had a NAT port
# in 41000-41999 by chance and been deleted.)
sas=$(ike_sas)
downs=$(glog -c 'IKE SA down.*peer=10\.98\.3\.2:41' || true)
sleep 24
check "its IKE SA is still up past the DPD timeout" bash -c \
  "[ \$(glog -c 'IKE SA down.*peer=10\.98\.3\.2:41' || true) -eq ${downs:-0} ] && [ \$(metric $GW $EP sluice_ipsec_ike_sas | cut -d. -f1) -eq $sas ]"
check "and it still pings" ip netns exec "$C1" ping -c 3 -i 0.2 -W 2 192.168.77.2

# 7. A client that stops deletes its SAs; the gateway removes them.
before=$(ike_sas)
kill -INT "$C2_PID"; wait "$C2_PID" 2>/dev/null || true
for _ in $(seq 1 20); do [ "$(ike_sas)" -lt "$before" ] && break; sleep 0.5; done
check "stopped client's IKE SA deleted ($before -> $(ike_sas))" test "$(ike_sas)" -lt "$before"
check "gateway logged the DELETE" glog -q "IKE SA down.*DeletedByPeer"

# 8. A client killed without DELETE is found dead by DPD (delay 5 s, timeout 15 s).
before=$(ike_sas)
kill -9 "$C1_PID"
for _ in $(seq 1 40); do [ "$(ike_sas)" -lt "$before" ] && break; sleep 1; done
check "DPD reaps the killed client's IKE SA" glog -q "IKE SA down.*DeadPeer"
check "its L2TP tunnel is closed with its IKE SA (not left to HELLO)" \
  glog -q "closing L2TP tunnel: its IPsec SAs are gone"
check "the direct client is still fine" ip netns exec "$C0" ping -c 2 -i 0.2 -W 2 192.168.77.2

# 9. Aggressive Mode is refused by default, and answered once the manifest allows it
#    (applied by a reload, without a restart) — here from behind the NAT.
check "Aggressive Mode is refused by default" bash -c \
  "! ip netns exec $C3 $CLIENT_BIN --protocol l2tp --server 10.98.4.1 --user alice --password alice-secret --ipsec-psk correct-horse-battery --ike-aggressive --duration 0 --timeout 6 >$WORK/am-refused.log 2>&1"
check "the refusal is counted" bash -c \
  "test \$(metric $GW $EP 'sluice_dropped_packets_total{reason=\"ike_aggressive_refused\"}' | cut -d. -f1) -ge 1"
applied=$(glog -c "configuration applied" || true)
sed -i 's/^      dpd: { delay: 5s, timeout: 15s }$/&\n      allowAggressiveMode: true/' "$M"
for _ in $(seq 1 20); do [ "$(glog -c 'configuration applied' || true)" -gt "$applied" ] && break; sleep 0.5; done
check "Aggressive Mode is answered once allowAggressiveMode is set (behind NAT)" bash -c \
  "ip netns exec $C4 $CLIENT_BIN --protocol l2tp --server 10.98.3.1 --user alice --password alice-secret --ipsec-psk correct-horse-battery --ike-aggressive --duration 0 --timeout 20 >$WORK/am.log 2>&1"

# 10. ESP SAs live one minute here: the gateway rekeys them itself (its own Quick Mode,
#     the in-repo client does not rekey) before they expire, and traffic goes on.
for _ in $(seq 1 70); do
  [ "$(glog -c 'ESP SAs installed.*peer=10\.98\.1\.2:' || true)" -ge 2 ] && break; sleep 1
done
check "the gateway rekeyed the direct client's ESP SAs before they expired" \
  bash -c "[ \$(glog -c 'ESP SAs installed.*peer=10\.98\.1\.2:') -ge 2 ]"
# The gateway seals with the replaced SA until the client sends on the new one (the client
# installs the pair on Quick Mode message 3, which ESP on the new SA could overtake).
sleep 2
kill -INT "$C0_PING"; wait "$C0_PING" 2>/dev/null || true
# Lost = transmitted - received, from ping's summary.
lost=$(sed -n 's/^\([0-9]*\) packets transmitted, \([0-9]*\) received.*/\1 \2/p' "$WORK/c0-ping.log" |
  awk '{print $1 - $2}')
check "no ping went missing across the rekey (${lost:-?} lost of $(grep -c 'bytes from' "$WORK/c0-ping.log") answered, 50 ms apart; one may be in flight at the end)" \
  test "${lost:-99}" -le 1
check "the direct client still pings after the rekey" ip netns exec "$C0" ping -c 3 -i 0.2 -W 2 192.168.77.2
check "its L2TP session survived the rekey (same client process, no reconnect)" kill -0 "$C0_PID"

kill -TERM "$C0_PID"; wait "$C0_PID" 2>/dev/null || true
kill -TERM "$GW_PID"; wait "$GW_PID" 2>/dev/null || true
summary
