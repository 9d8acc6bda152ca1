# The first Quick Mode message 3 the gateway sends is lost (nftables in the gateway's
# namespace: IKE from port 500, exchange type 32, short enough to hold only HASH(3)), so the
# guest installs the new pair only when its repeated message 2 fetches message 3 again.
# Afterwards: the loss happened, the gateway says it rekeyed, and the session lives on.
ip netns exec "$GW_NS" nft -f - <<'NFT'
table inet qm3 {
  chain outbound {
    type filter hook output priority 0;
    udp sport 500 @th,208,8 32 udp length < 120 quota until 150 bytes counter drop
  }
}
NFT
wait_mark guest up 200
wait_mark guest rekeyed 200
dropped() { ip netns exec "$GW_NS" nft list chain inet qm3 outbound | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
hcheck "the gateway's first Quick Mode message 3 was lost" test "$(dropped)" -eq 1
gwlog() { sed 's/\x1b\[[0-9;]*m//g' "$SW/gateway.log"; }
hcheck "the gateway installed a second ESP SA pair for the guest" \
  test "$(gwlog | grep -c 'ESP SAs installed')" -ge 2
hcheck "gateway still counts one l2tp tunnel" test "$(metric sluice_l2tp_tunnels)" -eq 1
