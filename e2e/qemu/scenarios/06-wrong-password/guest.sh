# Scenario 4: a wrong password is refused with E=691; bob's session is not disturbed.
# lab-timeout: 120
source ./lib.sh
pptp_start 0 bob bob-secret
check "bob: ppp0 comes up" pptp_wait 0 30
ip route add 192.168.77.0/24 dev ppp0

pptp_start 1 alice wrong-password
check "alice with a wrong password: the session does not come up" not pptp_wait 1 30
check "alice: pppd gave up" pptp_gone 1 30
check "alice: pppd reports the MS-CHAPv2 failure E=691" grep -q "E=691" /tmp/pppd-1.log
check "alice: pppd says authentication failed" grep -qi "authentication failed" /tmp/pppd-1.log

check "bob still up" kill -0 "$PPPD_0"
check "bob still reaches the host behind the gateway" ping -c 5 -i 0.2 -W 3 "$LAN_HOST"
pptp_start 2 alice alice-secret
check "alice with the right password: ppp2 comes up" pptp_wait 2 30
check "alice: ping the gateway's tunnel address" ping -c 3 -i 0.2 -W 3 -I ppp2 "$TUNNEL_GW"
check "bob: no disconnect in his log" not grep -qE "Connection terminated|Modem hangup|LCP TermReq" /tmp/pppd-0.log
pptp_stop 2; pptp_stop 0
summary
