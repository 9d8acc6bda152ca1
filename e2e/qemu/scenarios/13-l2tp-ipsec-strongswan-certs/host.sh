# The gateway names the client by its certificate's subject and holds one IKE SA.
wait_mark guest up 150
hcheck "gateway authenticated the client by its certificate (CN=alice)" \
  bash -c "sed 's/\x1b\[[0-9;]*m//g' '$SW/gateway.log' | grep -q 'IKE SA up.*CN=alice'"
hcheck "gateway holds one IKE SA" test "$(metric sluice_ipsec_ike_sas)" -eq 1
