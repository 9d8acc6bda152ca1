# iperf3 server on the LAN host; while the first pair is up the gateway holds one IKE SA,
# one ESP SA pair and one L2TP tunnel; after the guest deleted its SAs, none.
command -v iperf3 >/dev/null || { echo "iperf3 missing on the host: apt-get install -y iperf3"; exit 1; }
lab_bg "$LAN_NS" iperf3-server iperf3 -s
wait_mark guest up 200
hcheck "gateway holds one IKE SA" test "$(metric sluice_ipsec_ike_sas)" -eq 1
hcheck "gateway holds one ESP SA pair" test "$(metric sluice_ipsec_esp_sas)" -eq 1
hcheck "gateway counts one l2tp tunnel" test "$(metric sluice_l2tp_tunnels)" -eq 1
wait_mark guest measured 200
