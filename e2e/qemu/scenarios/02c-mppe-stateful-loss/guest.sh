# Scenario 2c: stateful MPPE-128 with 1 % of GRE packets lost each way (the host hook drops them
# at random in the gateway's namespace with nftables; this machine has no netem). iperf3 up
# (guest -> LAN) loads the gateway's receiver: lost IPv4 packets are recovered without a reset,
# other losses through CCP Reset-Request. iperf3 down (LAN -> guest) loads the kernel's
# receiver against the gateway's sender: pppd's Reset-Request is answered with a Reset-Ack and
# the next flag packet. Before issue 21 iperf3 hung here (connection reset).
# lab-timeout: 240
source ./lib.sh

pptp_start 0 alice alice-secret require-mppe-128 mppe-stateful refuse-pap refuse-eap refuse-chap refuse-mschap
check "ppp0 comes up through 1 % loss" pptp_wait 0 60
check "pppd enabled MPPE 128-bit stateful" grep -q "MPPE 128-bit stateful compression enabled" /tmp/pppd-0.log
ip route add 192.168.77.0/24 dev ppp0
mark up
check "iperf3 TCP up (guest -> LAN) completes through 1 % loss" \
  timeout 60 iperf3 -c "$LAN_HOST" -t 8 -f m --connect-timeout 5000 --logfile /tmp/iperf3-up.log
grep -E "sender|receiver" /tmp/iperf3-up.log
check "iperf3 TCP down (LAN -> guest) completes through 1 % loss" \
  timeout 60 iperf3 -c "$LAN_HOST" -t 8 -R -f m --connect-timeout 5000 --logfile /tmp/iperf3-down.log
grep -E "sender|receiver" /tmp/iperf3-down.log
check "the session still passes traffic" ping -c 5 -i 0.2 -W 3 "$LAN_HOST"
log "CCP resets seen by pppd: $(grep -c 'CCP ResetReq' /tmp/pppd-0.log) Reset-Requests, $(grep -c 'CCP ResetAck' /tmp/pppd-0.log) Reset-Acks"
mark done
pptp_stop 0
summary
