# Scenario 17: the guest is the SERVER. Stock pptpd + pppd (kernel PPP and MPPE, MS-CHAPv2
# only, MPPE-128 required) with an office network 172.30.0.0/24 behind it; Sluice on the
# host dials it (a VpnClient added by host.sh). The guest checks what its pppd negotiated,
# reaches Sluice's side through the tunnel, then hangs the call up from the server side and
# expects Sluice to dial again by itself.
# lab-timeout: 240
source ./lib.sh
ip link add office0 type dummy && ip addr add 172.30.0.1/24 dev office0 && ip link set office0 up
sysctl -qw net.ipv4.ip_forward=1
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
pptpd_start 10.201.0.1 10.201.0.2-20 branch branch-secret
mark ready

ppp_up() { for _ in $(seq "$1"); do ip -4 -o addr show dev ppp0 2>/dev/null | grep -q inet && return 0; sleep 0.5; done; return 1; }
check "Sluice dialled in: ppp0 is up" ppp_up 120
check "pppd authenticated Sluice with MS-CHAPv2" \
  bash -c 'grep -q "rcvd \[LCP ConfAck.*<auth chap MS-v2>" /tmp/pppd-server.log && grep -q "sent \[CHAP Success" /tmp/pppd-server.log'
check "pppd enabled MPPE 128-bit stateless" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-server.log
peer=$(ppp_peer 0)
check "Sluice's tunnel address $peer is from pptpd's range" bash -c "case $peer in 10.201.0.*) true;; *) false;; esac"
check "ping Sluice's tunnel address" ping -c 3 -i 0.3 -W 3 "$peer"
mark tunnel-up
# host.sh runs iperf3 against 172.30.0.1 (it exits after one test).
wait "$iperf_pid"
check "iperf3 from Sluice's side through the tunnel finished" grep -q "receiver" /tmp/iperf3-server.log
# The server hangs up (kills its pppd: as a crashed or restarted server would).
pkill -x pppd
for _ in $(seq 20); do ip link show ppp0 >/dev/null 2>&1 || break; sleep 0.5; done
mark hung-up
check "Sluice dials again by itself" ppp_up 60
check "ping through the new call" ping -c 2 -i 0.3 -W 3 "$(ppp_peer 0)"
mark redialled
# host.sh's last checks read Sluice's status while the tunnel is up.
sleep 5
summary
