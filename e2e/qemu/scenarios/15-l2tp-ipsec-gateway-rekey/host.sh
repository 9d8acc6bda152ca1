# While the session is up the gateway holds one IKE SA; after its own Phase 1 rekey it still
# holds one IKE SA, one ESP SA pair and one L2TP tunnel, and says the old SA was rekeyed.
wait_mark guest up 200
hcheck "gateway holds one IKE SA" test "$(metric sluice_ipsec_ike_sas)" -eq 1
wait_mark guest rekeyed 200
gwlog() { sed 's/\x1b\[[0-9;]*m//g' "$SW/gateway.log"; }
hcheck "the gateway's log names the rekey" grep -q "reason=Rekeyed" <<<"$(gwlog)"
hcheck "gateway holds one IKE SA after the rekey" test "$(metric sluice_ipsec_ike_sas)" -eq 1
hcheck "gateway holds one ESP SA pair" test "$(metric sluice_ipsec_esp_sas)" -eq 1
hcheck "gateway still counts one l2tp tunnel" test "$(metric sluice_l2tp_tunnels)" -eq 1
hcheck "no L2TP peer was closed" bash -c '! grep -qE "l2tp_peers_closed=[1-9]" <<<"$1"' _ "$(gwlog)"
