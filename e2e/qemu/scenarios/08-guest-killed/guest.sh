# Scenario 6: bring a session up and wait; the host kills this guest (host.sh).
# lab-timeout: 150
source ./lib.sh
pptp_start 0 alice alice-secret
check "ppp0 comes up" pptp_wait 0 30
check "ping the gateway's tunnel address" ping -c 2 -i 0.2 -W 3 -I ppp0 "$TUNNEL_GW"
[ "$FAILED" -eq 0 ] && mark up
sleep 120
summary
