# Scenario 1: stock pppd + pptp-linux, MS-CHAPv2 + require-mppe-128 (stateless).
# lab-timeout: 90
source ./lib.sh

pptp_start 0 alice alice-secret require-mppe-128 \
  refuse-pap refuse-eap refuse-chap refuse-mschap
check "ppp0 comes up" pptp_wait 0 30
addr=$(ppp_addr 0)
check "ppp0 address $addr is from the pool 10.200.0.0/24" in_pool "$addr"
check "peer (gateway tunnel) address is 10.200.0.1" test "$(ppp_peer 0)" = 10.200.0.1
check "pppd authenticated with MS-CHAPv2" \
  bash -c 'grep -q "sent \[LCP ConfAck.*<auth chap MS-v2>" /tmp/pppd-0.log && grep -q "rcvd \[CHAP Success" /tmp/pppd-0.log'
check "pppd enabled MPPE 128-bit stateless" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-0.log
check "DNS from the manifest in /etc/ppp/resolv.conf" \
  bash -c 'grep -qx "nameserver 10.200.0.53" /etc/ppp/resolv.conf && grep -qx "nameserver 192.168.77.53" /etc/ppp/resolv.conf'
check "ppp0 MTU is 1400" test "$(ppp_mtu 0)" = 1400
ip route add 192.168.77.0/24 dev ppp0
check "ping the gateway's tunnel address" ping -c 3 -i 0.3 -W 3 -I ppp0 10.200.0.1
check "ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
check "1400-byte ping with DF set" ping -c 3 -i 0.3 -W 3 -M do -s 1372 "$LAN_HOST"
check "1401-byte DF ping is refused locally (MTU honoured)" bash -c "! ping -c 1 -W 2 -M do -s 1373 $LAN_HOST"
pptp_stop 0
check "pppd hung up cleanly" grep -q "Connection terminated" /tmp/pppd-0.log
summary
