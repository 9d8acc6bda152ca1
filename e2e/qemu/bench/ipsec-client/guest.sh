# L2TP/IPsec bench client (bench-ipsec.sh, bench-softether.sh): stock strongSwan (IKEv1 PSK,
# aes128-sha1-modp2048, ESP aes128-sha1 in transport mode for udp/1701, kernel XFRM) +
# xl2tpd + pppd (MS-CHAPv2, no MPPE), then iperf3 TCP through the tunnel.
# ./bench.env (written by the host script) may set:
#   BENCH_SERVER   the L2TP/IPsec server (default: the default gateway, 10.99.0.1)
#   BENCH_TARGET   the iperf3 server (default: the server's tunnel address 10.200.0.1)
#   BENCH_ROUTE    a prefix to route into ppp0 (e.g. 192.168.77.0/24)
#   BENCH_BEACON   a TCP port on BENCH_SERVER that opens once the server is ready
#   BENCH_SECONDS  iperf3 duration (default 10)
source ./lib.sh
[ -f ./bench.env ] && source ./bench.env
SERVER=${BENCH_SERVER:-$SERVER}
TARGET=${BENCH_TARGET:-$TUNNEL_GW}
SECONDS_IPERF=${BENCH_SECONDS:-10}
if [ -n "${BENCH_BEACON:-}" ]; then
  for _ in $(seq 1500); do timeout 1 bash -c "</dev/tcp/$SERVER/$BENCH_BEACON" 2>/dev/null && break; sleep 0.2; done
fi
ipsec_start aes128-sha1-modp2048 aes128-sha1
check "strongSwan: IKE SA + transport-mode CHILD_SA installed" ipsec_up
check "the kernel holds the ESP SAs (ip xfrm state)" \
  bash -c 'ip xfrm state | grep -q "proto esp" && ip xfrm state | grep -q "mode transport"'
l2tp_start alice alice-secret
check "ppp0 comes up over L2TP inside ESP" l2tp_wait 60
[ -n "${BENCH_ROUTE:-}" ] && ip route add "$BENCH_ROUTE" dev ppp0 2>/dev/null
log "ppp0: $(ppp_addr 0) -> $(ppp_peer 0), mtu $(ppp_mtu 0)"
check "ping $TARGET through the tunnel" ping -c 3 -i 0.3 -W 3 "$TARGET"
mark iperf-start
check "iperf3 TCP ${SECONDS_IPERF} s to $TARGET" iperf3 -c "$TARGET" -t "$SECONDS_IPERF" -f m --logfile /tmp/iperf3.log
mark iperf-done
cat /tmp/iperf3.log
echo "BENCH-RESULT: $(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }' /tmp/iperf3.log | tail -n 1)"
check "the traffic travelled inside ESP (XFRM packet counters)" \
  bash -c 'ip -s xfrm state | awk "/lifetime current/ {getline; print}" | grep -qvE "^ *0\(bytes\), 0\(packets\)"'
ip -s xfrm state | grep -E "^src|proto esp|enc |auth|bytes" || true
l2tp_stop
ipsec_stop
summary
