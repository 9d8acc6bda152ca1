# Candidate L2TP/IPsec server (bench-ipsec.sh phase b): sluice-dataplane (copied into this
# guest, same image and vCPUs as the baseline) with ./manifest.yaml, and iperf3 -s on the
# guest, reached through sluice's TUN (10.200.0.1). TCP 5299 opens once ready.
source ./lib.sh
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
./sluice-dataplane --manifests ./manifest.yaml --metrics-listen 127.0.0.1:9810 >/tmp/sluice.log 2>&1 &
gw_pid=$!
for _ in $(seq 200); do grep -q "gateway ready" /tmp/sluice.log && break; kill -0 "$gw_pid" || break; sleep 0.1; done
grep -q "gateway ready" /tmp/sluice.log || { cat /tmp/sluice.log; exit 1; }
iperf3 -s -p 5299 >/dev/null 2>&1 &   # readiness beacon for the client
mark ready
wait "$iperf_pid"
./sluice-dataplane sessions
