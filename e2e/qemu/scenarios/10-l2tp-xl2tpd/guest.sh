# Scenario 10: stock xl2tpd (LAC) + pppd, MS-CHAPv2, plain L2TP; ping and iperf3 through
# the tunnel, then a clean hang-up (CDN + StopCCN from xl2tpd).
# lab-timeout: 150
source ./lib.sh

l2tp_start alice alice-secret
check "ppp0 comes up over L2TP" l2tp_wait 40
addr=$(ppp_addr 0)
check "ppp0 address $addr is from the pool 10.200.0.0/24" in_pool "$addr"
check "peer (gateway tunnel) address is 10.200.0.1" test "$(ppp_peer 0)" = 10.200.0.1
check "pppd authenticated with MS-CHAPv2" \
  bash -c 'grep -q "sent \[LCP ConfAck.*<auth chap MS-v2>" /tmp/pppd-0.log && grep -q "rcvd \[CHAP Success" /tmp/pppd-0.log'
check "no MPPE was negotiated" not grep -q "MPPE .* enabled" /tmp/pppd-0.log
check "DNS from the manifest in /etc/ppp/resolv.conf" grep -qx "nameserver 10.200.0.53" /etc/ppp/resolv.conf
check "xl2tpd reports the tunnel and call established" \
  bash -c 'grep -qiE "Connection established|Call established" /tmp/xl2tpd.log'
ip route add 192.168.77.0/24 dev ppp0
check "ping the gateway's tunnel address" ping -c 3 -i 0.3 -W 3 -I ppp0 10.200.0.1
check "ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
check "1400-byte ping with DF set" ping -c 3 -i 0.3 -W 3 -M do -s 1372 "$LAN_HOST"
mark up
check "iperf3 TCP through the L2TP tunnel for 8 s" iperf3 -c "$LAN_HOST" -t 8 -f m --logfile /tmp/iperf3.log
grep -E "sender|receiver" /tmp/iperf3.log
mark done
l2tp_stop
check "pppd hung up" bash -c 'grep -qE "Connection terminated|Modem hangup|Hangup" /tmp/pppd-0.log'
summary
