# Scenario 5: five concurrent pppd sessions from one guest (pptp-linux carries them
# as five calls on one control connection), each with its own address; iperf3
# through one of them to the LAN host.
# lab-timeout: 180
source ./lib.sh
for u in 0 1 2 3 4; do pptp_start "$u" alice alice-secret; done
for u in 0 1 2 3 4; do check "ppp$u comes up" pptp_wait "$u" 40; done
addrs=$(for u in 0 1 2 3 4; do ppp_addr "$u"; done)
log "addresses: $(echo $addrs)"
check "five distinct addresses from the pool" test "$(echo "$addrs" | sort -u | grep -c '^10\.200\.0\.')" -eq 5
for u in 0 1 2 3 4; do check "ppp$u: ping the gateway's tunnel address" ping -c 3 -i 0.2 -W 3 -I "ppp$u" "$TUNNEL_GW"; done
mark up
ip route add 192.168.77.0/24 dev ppp2
check "iperf3 TCP through ppp2 for 8 s" iperf3 -c "$LAN_HOST" -t 8 -f m --logfile /tmp/iperf3.log
grep -E "sender|receiver" /tmp/iperf3.log
for u in 0 1 3 4; do check "ppp$u still passes traffic after the iperf3 run" ping -c 2 -i 0.2 -W 3 -I "ppp$u" "$TUNNEL_GW"; done
mark done
for u in 0 1 2 3 4; do pptp_stop "$u"; done
summary
