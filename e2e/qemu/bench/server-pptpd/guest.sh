# Baseline server: stock pptpd + pppd (kernel PPP and MPPE), iperf3 server on the tunnel side.
source ./lib.sh
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
pptpd_start 10.200.0.1 10.200.0.2-20 alice alice-secret
mark ready
wait "$iperf_pid"
