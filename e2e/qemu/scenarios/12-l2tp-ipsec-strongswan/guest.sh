# Scenario 12: stock strongSwan (IKEv1 PSK, transport mode for udp/1701) + xl2tpd + pppd
# against the gateway, once per proposal pair the issue names: the IKE SA, the ESP SAs in
# the guest kernel (XFRM), a PPP session over L2TP inside ESP, ping, and iperf3 with the
# first pair; then DELETE on the way down.
# lab-timeout: 420
source ./lib.sh

run_pair() {  # IKE ESP
  local ike=$1 esp=$2
  ipsec_start "$ike" "$esp"
  check "[$ike / $esp] strongSwan: IKE SA + transport-mode CHILD_SA installed" ipsec_up
  check "[$ike / $esp] the kernel holds the ESP SAs (ip xfrm state)" \
    bash -c 'ip xfrm state | grep -q "proto esp" && ip xfrm state | grep -q "mode transport"'
  l2tp_start alice alice-secret
  check "[$ike / $esp] ppp0 comes up over L2TP inside ESP" l2tp_wait 40
  check "[$ike / $esp] L2TP travelled inside ESP (XFRM packet counters)" \
    bash -c 'ip -s xfrm state | awk "/lifetime current/ {getline; print}" | grep -qvE "^ *0\(bytes\), 0\(packets\)"'
  ip route add 192.168.77.0/24 dev ppp0 2>/dev/null || true
  check "[$ike / $esp] ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
  check "[$ike / $esp] 1300-byte ping with DF set" ping -c 2 -i 0.3 -W 3 -M do -s 1300 "$LAN_HOST"
  if [ "${3:-}" = iperf ]; then
    mark up
    check "[$ike / $esp] iperf3 TCP through L2TP/IPsec for 8 s" iperf3 -c "$LAN_HOST" -t 8 -f m --logfile /tmp/iperf3.log
    grep -E "sender|receiver" /tmp/iperf3.log
    mark measured
  fi
  l2tp_stop
  ipsec_stop
  sleep 1
}

run_pair aes128-sha1-modp2048 aes128-sha1 iperf
run_pair aes256-sha256-modp2048 aes256-sha256
run_pair 3des-sha1-modp1024 3des-sha1
grep -E "IKE_SA sluice\[[0-9]+\] established|CHILD_SA sluice\{[0-9]+\} established" /tmp/charon.log | head -n 6
summary
