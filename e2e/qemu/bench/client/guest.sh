# Bench client: pppd + pptp-linux to the server guest (10.99.0.11), then iperf3 TCP.
source ./lib.sh
SERVER=10.99.0.11
SECONDS_IPERF=${SECONDS_IPERF:-10}
for _ in $(seq 600); do timeout 1 bash -c "</dev/tcp/$SERVER/1723" 2>/dev/null && break; sleep 0.2; done
pptp_start 0 alice alice-secret
check "ppp0 comes up" pptp_wait 0 30
check "MPPE 128-bit" grep -q "MPPE 128-bit stateless compression enabled" /tmp/pppd-0.log
check "iperf3 TCP ${SECONDS_IPERF} s" iperf3 -c 10.200.0.1 -t "$SECONDS_IPERF" -f m --logfile /tmp/iperf3.log
cat /tmp/iperf3.log
echo "BENCH-RESULT: $(awk '/receiver/ { for (i = 1; i < NF; i++) if ($(i + 1) == "Mbits/sec") print $i }' /tmp/iperf3.log | tail -n 1)"
pptp_stop 0
summary
