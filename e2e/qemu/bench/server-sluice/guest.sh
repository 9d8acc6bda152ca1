# Candidate server: sluice-dataplane (copied into this identical guest), iperf3 server.
source ./lib.sh
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
./sluice-dataplane --manifests ./manifest.yaml --metrics-listen 127.0.0.1:9810 >/tmp/sluice.log 2>&1 &
gw_pid=$!
for _ in $(seq 100); do grep -q "gateway ready" /tmp/sluice.log && break; kill -0 "$gw_pid" || break; sleep 0.1; done
grep -q "gateway ready" /tmp/sluice.log || { cat /tmp/sluice.log; exit 1; }
mark ready
wait "$iperf_pid"
./sluice-dataplane sessions
