# Scenario 3a: MS-CHAPv1, CHAP-MD5 and PAP accepted because the manifest lists them;
# MS-CHAPv2 refused because it does not.
# lab-timeout: 150
source ./lib.sh
declare -A OPTS=(
  [1]="require-mppe-128 refuse-pap refuse-eap refuse-chap refuse-mschap-v2"
  [2]="refuse-pap refuse-eap refuse-mschap refuse-mschap-v2"
  [3]="refuse-chap refuse-eap refuse-mschap refuse-mschap-v2"
  [4]="require-mppe-128 refuse-pap refuse-eap refuse-chap refuse-mschap"
)
NAMES=([1]="MS-CHAPv1 + MPPE-128" [2]="CHAP-MD5" [3]="PAP" [4]="MS-CHAPv2")
AUTH=([1]="<auth chap MS>" [2]="<auth chap MD5>" [3]="<auth pap>")

# The refused one runs concurrently with the others.
pptp_start 4 alice alice-secret ${OPTS[4]}
for u in 1 2 3; do
  pptp_start "$u" alice alice-secret ${OPTS[$u]}
  check "${NAMES[$u]}: ppp$u comes up" pptp_wait "$u" 30
  check "${NAMES[$u]}: pppd acked ${AUTH[$u]}" acked "$u" "${AUTH[$u]}"
  check "${NAMES[$u]}: ping the gateway's tunnel address" ping -c 3 -i 0.2 -W 3 -I "ppp$u" "$TUNNEL_GW"
  pptp_stop "$u"
done
check "MS-CHAPv1: MPPE 128-bit enabled" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-1.log
check "CHAP-MD5: no MPPE (encryption: allow, client did not ask)" not grep -q "MPPE .* compression enabled" /tmp/pppd-2.log
check "MS-CHAPv2 (not in the list): the session does not come up" not pptp_wait 4 40
check "MS-CHAPv2: pppd gave up" pptp_gone 4 40
check "MS-CHAPv2: the gateway answered (LCP negotiation took place)" grep -q "rcvd \[LCP ConfReq" /tmp/pppd-4.log
check "MS-CHAPv2: never authenticated" not grep -q "CHAP Success" /tmp/pppd-4.log
summary
