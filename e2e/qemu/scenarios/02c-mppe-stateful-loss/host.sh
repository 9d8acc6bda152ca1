# 1 % of GRE packets dropped at random each way in the gateway's namespace, from the start;
# iperf3 server on the LAN host. Afterwards: loss really happened both ways, and the
# gateway's stateful-MPPE counters say how it was repaired.
command -v iperf3 >/dev/null || { echo "iperf3 missing on the host: apt-get install -y iperf3"; exit 1; }
ip netns exec "$GW_NS" nft -f - <<'NFT'
table inet lossy {
  chain inbound {
    type filter hook input priority 0;
    ip protocol gre numgen random mod 100 < 1 counter drop
  }
  chain outbound {
    type filter hook output priority 0;
    ip protocol gre numgen random mod 100 < 1 counter drop
  }
}
NFT
lab_bg "$LAN_NS" iperf3-server iperf3 -s
wait_mark guest done 230
dropped() { ip netns exec "$GW_NS" nft list chain inet lossy "$1" | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
echo "GRE packets dropped by the lossy rules: inbound $(dropped inbound), outbound $(dropped outbound)"
hcheck "GRE packets toward the gateway were lost" test "$(dropped inbound)" -gt 0
hcheck "GRE packets toward the guest were lost" test "$(dropped outbound)" -gt 0
gw_metrics | grep -E '^sluice_(mppe|gre_beyond)' || true
hcheck "the gateway recovered lost packets without a reset" test "$(metric sluice_mppe_gaps_recovered_total)" -gt 0
