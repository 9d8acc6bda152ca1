# iperf3 server on the LAN host; the gateway lists one l2tp session while the guest is up,
# and no tunnel once xl2tpd has hung up.
command -v iperf3 >/dev/null || { echo "iperf3 missing on the host: apt-get install -y iperf3"; exit 1; }
lab_bg "$LAN_NS" iperf3-server iperf3 -s
wait_mark guest up 150
gw_sessions
hcheck "gateway lists one up l2tp session" \
  test "$(sessions_py 'len([x for x in s if x["protocol"] == "l2tp" and x["state"] == "up"])')" -eq 1
hcheck "gateway counts one l2tp tunnel" test "$(metric sluice_l2tp_tunnels)" -eq 1
wait_mark guest done 150
for _ in $(seq 1 50); do
  [ "$(metric sluice_l2tp_tunnels)" -eq 0 ] && break
  sleep 0.2
done
hcheck "tunnel closed after xl2tpd hung up (StopCCN)" test "$(metric sluice_l2tp_tunnels)" -eq 0
