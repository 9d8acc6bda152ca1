# Scenario 14: two guests at once behind one NAT (10.98.0.11 and .12, both masqueraded to
# 10.99.0.2), each with stock strongSwan (IKEv1 PSK aes128-sha1-modp2048, ESP aes128-sha1,
# transport mode for udp/1701) + xl2tpd + pppd, guest1 as alice and guest2 as bob. Both
# detect the NAT and float to UDP-encapsulated ESP (NAT-T, RFC 3947/3948); both sessions
# are up at the same time while the host checks the gateway (mark "up", then it opens
# the "go" port on the LAN host); then guest1 runs iperf3 while guest2 pings, and both
# hang up and delete their SAs.
# lab-timeout: 300
# lab-guests: 2
# lab-nat: yes
source ./lib.sh

GO_PORT=5301   # host.sh listens here on the LAN host once it checked both sessions
case $GUEST_INDEX in
  1) user=alice ;;
  2) user=bob ;;
  *) log "no user for guest index $GUEST_INDEX"; exit 1 ;;
esac
log "$GUEST_NAME (index $GUEST_INDEX) as $user from $(ip -4 -o addr show dev eth0 | awk '{print $4}'), gateway $SERVER"

ipsec_start aes128-sha1-modp2048 aes128-sha1
check "[$user] strongSwan: IKE SA + transport-mode CHILD_SA installed through the NAT" ipsec_up
check "[$user] strongSwan detected the NAT (local host is behind NAT)" \
  grep -q "local host is behind NAT" /tmp/charon.log
check "[$user] the kernel's ESP SAs are UDP-encapsulated (ip xfrm state: encap type espinudp)" \
  bash -c 'test "$(ip xfrm state | grep -c "encap type espinudp")" -ge 2'
check "[$user] the kernel's ESP SAs are in transport mode" \
  bash -c 'ip xfrm state | grep -q "proto esp" && ip xfrm state | grep -q "mode transport"'
l2tp_start "$user" "$user-secret"
check "[$user] ppp0 comes up over L2TP inside ESP-in-UDP" l2tp_wait 60
check "[$user] ppp0 got an address from the pool ($(ppp_addr 0))" in_pool "$(ppp_addr 0)"
check "[$user] L2TP travelled inside ESP (XFRM packet counters)" \
  bash -c 'ip -s xfrm state | awk "/lifetime current/ {getline; print}" | grep -qvE "^ *0\(bytes\), 0\(packets\)"'
ip route add 192.168.77.0/24 dev ppp0 2>/dev/null || true
check "[$user] ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
ip -4 -o addr show dev ppp0
ip xfrm state | grep -E "^src|encap"
mark up

# Hold the session until the host has seen both (it opens GO_PORT on the LAN host, reached
# through this tunnel; until then the port is closed and the connect fails at once).
go=""
for _ in $(seq 360); do
  timeout 2 bash -c "</dev/tcp/$LAN_HOST/$GO_PORT" 2>/dev/null && { go=1; break; }
  sleep 0.5
done
check "[$user] the host checked both sessions (go on $LAN_HOST:$GO_PORT)" test -n "$go"

# Traffic on both at once: guest1 iperf3 (TCP, 5 s), guest2 pings meanwhile.
if [ "$GUEST_INDEX" -eq 1 ]; then
  check "[$user] iperf3 TCP through L2TP/IPsec behind the NAT for 5 s (the other guest pings)" \
    iperf3 -c "$LAN_HOST" -t 5 -f m --connect-timeout 5000 --logfile /tmp/iperf3.log
  grep -E "sender|receiver" /tmp/iperf3.log
else
  ping -c 14 -i 0.5 -W 3 "$LAN_HOST" >/tmp/ping-during-iperf.log 2>&1
  tail -n 2 /tmp/ping-during-iperf.log
  check "[$user] pings while the other guest runs iperf3: at least 12 of 14 answered" \
    bash -c 'r=$(sed -n "s/.* \([0-9]*\) received.*/\1/p" /tmp/ping-during-iperf.log); test "${r:-0}" -ge 12'
fi
mark measured

l2tp_stop
ipsec_stop
check "[$user] the kernel's ESP SAs are gone after ipsec down" bash -c 'test -z "$(ip xfrm state)"'
grep -E "IKE_SA sluice\[[0-9]+\] established|CHILD_SA sluice\{[0-9]+\} established|behind NAT" /tmp/charon.log | head -n 6
mark down
summary
