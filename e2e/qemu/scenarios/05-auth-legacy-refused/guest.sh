# Scenario 3b: with the default policy (MS-CHAPv2 only) clients that offer only
# MS-CHAPv1, CHAP-MD5 or PAP are refused; MS-CHAPv2 still works.
# lab-timeout: 150
source ./lib.sh
pptp_start 1 alice alice-secret require-mppe-128 refuse-pap refuse-eap refuse-chap refuse-mschap-v2
pptp_start 2 alice alice-secret refuse-pap refuse-eap refuse-mschap refuse-mschap-v2
pptp_start 3 alice alice-secret refuse-chap refuse-eap refuse-mschap refuse-mschap-v2
NAMES=([1]="MS-CHAPv1" [2]="CHAP-MD5" [3]="PAP")
for u in 1 2 3; do
  check "${NAMES[$u]} only: the session does not come up" not pptp_wait "$u" 45
  check "${NAMES[$u]} only: pppd gave up" pptp_gone "$u" 45
  check "${NAMES[$u]} only: the gateway answered (LCP negotiation took place)" grep -q "rcvd \[LCP ConfReq" "/tmp/pppd-$u.log"
  check "${NAMES[$u]} only: never authenticated" not grep -qE "CHAP Success|PAP AuthAck|authentication succeeded" "/tmp/pppd-$u.log"
done
pptp_start 0 alice alice-secret
check "MS-CHAPv2 still works: ppp0 comes up" pptp_wait 0 30
check "MS-CHAPv2: ping the gateway's tunnel address" ping -c 3 -i 0.2 -W 3 -I ppp0 "$TUNNEL_GW"
pptp_stop 0
summary
