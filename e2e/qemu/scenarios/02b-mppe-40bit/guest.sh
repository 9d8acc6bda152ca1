# Scenario 2b: the manifest allows 40-bit keys: a client that only does 40-bit gets 40-bit,
# a client that allows both gets the strongest (128-bit).
# lab-timeout: 120
source ./lib.sh

pptp_start 0 alice alice-secret require-mppe-40 refuse-pap refuse-eap refuse-chap refuse-mschap
check "40-bit: ppp0 comes up" pptp_wait 0 30
check "40-bit: pppd enabled MPPE 40-bit stateless" grep -q "MPPE 40-bit stateless compression enabled" /tmp/pppd-0.log
ip route add 192.168.77.0/24 dev ppp0
check "40-bit: ping a host on the gateway side" ping -c 5 -i 0.2 -W 3 "$LAN_HOST"
check "40-bit: 1400-byte ping with DF set" ping -c 3 -i 0.3 -W 3 -M do -s 1372 "$LAN_HOST"
pptp_stop 0

pptp_start 1 alice alice-secret require-mppe refuse-pap refuse-eap refuse-chap refuse-mschap
check "40 or 128: ppp1 comes up" pptp_wait 1 30
check "40 or 128: the strongest common key length (128-bit) is used" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-1.log
ip route add 192.168.77.0/24 dev ppp1
check "40 or 128: ping a host on the gateway side" ping -c 5 -i 0.2 -W 3 "$LAN_HOST"
pptp_stop 1
summary
