# Two guests behind one NAT: while both sessions are up the gateway holds two IKE SAs, two
# ESP SA pairs (UDP-encapsulated, both from the NAT's 10.99.0.2 but different ports) and
# two L2TP tunnels, and lists alice and bob from the same caller address; then it opens
# the "go" port; after both guests hung up and deleted their SAs, nothing is left.
command -v iperf3 >/dev/null || { echo "iperf3 missing on the host: apt-get install -y iperf3"; exit 1; }
lab_bg "$LAN_NS" iperf3-server iperf3 -s
gwlog() { sed 's/\x1b\[[0-9;]*m//g' "$SW/gateway.log"; }
# The NAT-side ports of the ESP-in-UDP SAs the gateway installed (peer=10.99.0.2:PORT).
esp_ports() { gwlog | grep "ESP SAs installed" | grep "udp_encap=true" | grep -oE "peer=$NAT_ADDR:[0-9]+" | sort -u; }

both_up=yes
wait_marks up 240 || both_up=no
hcheck "both guests hold their session at once (mark up)" test "$both_up" = yes
if [ "$both_up" = yes ]; then
  gw_sessions
  gwlog | grep -E "IKE SA up|ESP SAs installed" || true
  hcheck "gateway holds two IKE SAs" test "$(metric sluice_ipsec_ike_sas)" -eq 2
  hcheck "gateway holds two ESP SA pairs" test "$(metric sluice_ipsec_esp_sas)" -eq 2
  hcheck "gateway counts two l2tp tunnels" test "$(metric sluice_l2tp_tunnels)" -eq 2
  hcheck "gateway lists alice and bob up over l2tp, both from the NAT's $NAT_ADDR, distinct addresses" \
    test "$(sessions_py "sorted(x['user'] for x in s if x['state'] == 'up' and x['protocol'] == 'l2tp' and x['caller'] == '$NAT_ADDR') == ['alice', 'bob'] and len({x['address'] for x in s} - {None}) == 2")" = True
  hcheck "the gateway's ESP SAs are UDP-encapsulated, to two different ports of $NAT_ADDR" \
    test "$(esp_ports | wc -l)" -eq 2
  hcheck "the gateway saw both IKE SAs behind a NAT" \
    test "$(gwlog | grep "IKE SA up" | grep -c "client_behind_nat=true")" -eq 2
fi
# Let the guests go on (they give up waiting after about 3 minutes anyway).
lab_bg "$LAN_NS" go python3 -c '
import socket
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", 5301)); s.listen(8)
while True:
    c, _ = s.accept(); c.close()'

down=yes
wait_marks down 120 || down=no
hcheck "both guests hung up (mark down)" test "$down" = yes
gone=no
for _ in $(seq 100); do
  if [ "$(metric sluice_ipsec_ike_sas)" -eq 0 ] && [ "$(metric sluice_ipsec_esp_sas)" -eq 0 ] \
     && [ "$(metric sluice_l2tp_tunnels)" -eq 0 ] && [ "$(sessions_py 'len(s)')" -eq 0 ]; then gone=yes; break; fi
  sleep 0.1
done
gw_sessions
hcheck "after both hung up: no IKE SA, no ESP SA, no l2tp tunnel, no session" test "$gone" = yes
