# Scenario 3: the manifest allows only 128-bit stateless MPPE: a client that insists
# on 40-bit keys is refused cleanly; a client allowing stateful gets stateless.
# lab-timeout: 120
source ./lib.sh

pptp_start 0 alice alice-secret require-mppe-40 refuse-pap refuse-eap refuse-chap refuse-mschap
check "40-bit only: the session does not come up" not pptp_wait 0 40
check "40-bit only: pppd gave up" pptp_gone 0 40
check "40-bit only: authenticated, then refused in CCP" grep -q "rcvd \[CHAP Success" /tmp/pppd-0.log
check "40-bit only: CCP never agreed on MPPE" not grep -q "MPPE .* compression enabled" /tmp/pppd-0.log
check "40-bit only: the link was terminated (LCP TermReq/TermAck or hangup)" \
  grep -qE "LCP TermReq|LCP TermAck|Connection terminated|Modem hangup" /tmp/pppd-0.log

pptp_start 1 alice alice-secret require-mppe-128 mppe-stateful refuse-pap refuse-eap refuse-chap refuse-mschap
check "stateful allowed by the client: ppp1 comes up" pptp_wait 1 30
check "stateful not allowed by the gateway: MPPE 128-bit stateless" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-1.log
ip route add 192.168.77.0/24 dev ppp1
check "ping a host on the gateway side" ping -c 5 -i 0.2 -W 3 "$LAN_HOST"
pptp_stop 1
summary
