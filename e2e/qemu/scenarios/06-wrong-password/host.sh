# After the guest finishes, the gateway has counted exactly one MS-CHAPv2 failure.
wait_for "$SW/guest.serial.log" "^SLUICE-VERDICT" 150
hcheck "gateway counted one MS-CHAPv2 authentication failure" \
  test "$(metric 'sluice_auth_failures_total{method="mschapv2"}')" -eq 1
hcheck "gateway counted the failed setup as auth_failed" \
  test "$(metric 'sluice_session_setups_total{protocol="pptp",result="auth_failed"}')" -ge 1
hcheck "gateway counted two successful setups (bob, alice)" \
  test "$(metric 'sluice_session_setups_total{protocol="pptp",result="ok"}')" -eq 2
