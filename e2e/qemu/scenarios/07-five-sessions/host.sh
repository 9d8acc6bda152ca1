# iperf3 server on the LAN host; the gateway lists five sessions with distinct addresses.
command -v iperf3 >/dev/null || { echo "iperf3 missing on the host: apt-get install -y iperf3"; exit 1; }
lab_bg "$LAN_NS" iperf3-server iperf3 -s
wait_mark guest up 150
gw_sessions
hcheck "gateway lists five up sessions with distinct addresses" \
  test "$(sessions_py 'len({x["address"] for x in s if x["state"] == "up"})')" -eq 5
hcheck "pool metric shows five addresses in use" test "$(metric sluice_pool_addresses_used)" -eq 5
wait_mark guest done 150
gw_sessions
