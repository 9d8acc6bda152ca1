# Scenario 7: alice and bob connected; the host removes alice from the manifest and
# reloads (host.sh). alice's session must end, bob's must keep passing traffic.
# lab-timeout: 150
source ./lib.sh
pptp_start 0 alice alice-secret
pptp_start 1 bob bob-secret
check "alice: ppp0 comes up" pptp_wait 0 30
check "bob: ppp1 comes up" pptp_wait 1 30
ip route add 192.168.77.0/24 dev ppp1
check "bob reaches the host behind the gateway" ping -c 3 -i 0.2 -W 3 "$LAN_HOST"
ping -i 0.2 -W 2 "$LAN_HOST" >/tmp/ping-bob.log 2>&1 &
ping_pid=$!
mark up
check "alice's pppd ends after the reload" pptp_gone 0 60
check "alice: the gateway terminated the link" grep -qE "rcvd \[LCP TermReq|Modem hangup|Connection terminated" /tmp/pppd-0.log
sleep 2
kill -INT "$ping_pid"; wait "$ping_pid"
tail -n 3 /tmp/ping-bob.log
check "bob's pppd is still running" kill -0 "$PPPD_1"
check "bob lost no packet while alice was removed" grep -q " 0% packet loss" /tmp/ping-bob.log
check "bob still reaches the host behind the gateway" ping -c 3 -i 0.2 -W 3 "$LAN_HOST"
pptp_stop 1
summary
