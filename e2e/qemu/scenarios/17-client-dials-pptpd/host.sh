# Adds the VpnClient once pptpd listens; measures file change → Connected and the redial
# after the server hangs up; iperf3 through the tunnel to the guest's office network.
client_field() {  # FIELD: of the one client tunnel
  ip netns exec "$GW_NS" "$SLUICE_BIN" clients --json | python3 -c 'import json,sys; r=json.load(sys.stdin); print(r[0].get(sys.argv[1]) if r else "")' "$1"
}
until_connected() {  # SECONDS: prints seconds waited, fails on timeout
  local t0; t0=$(date +%s.%N)
  for _ in $(seq $(( $1 * 10 ))); do
    [ "$(client_field phase)" = Connected ] && { python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')"; return 0; }
    sleep 0.1
  done
  return 1
}
wait_mark guest ready 150
cp "$MANIFEST" "$SW/with-client.yaml"
cat >>"$SW/with-client.yaml" <<YAML
---
apiVersion: sluice.dev/v1alpha1
kind: VpnClient
metadata: { name: office }
spec:
  gatewayRef: { name: lab }
  protocol: pptp
  connectTo: 10.99.0.11
  credentialsSecretRef: { name: office-login }
  routes: [172.30.0.0/24]
  reconnect: { initial: 1s, max: 10s }
YAML
t0=$(date +%s.%N)
hcheck "reload with the VpnClient applied" gateway_reload "$SW/with-client.yaml"
took=$(until_connected 60) || took=timeout
hcheck "the VpnClient is Connected" test "$took" != timeout
[ "$took" != timeout ] && log "FIGURE apply → Connected against pptpd: $(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")s"
ip netns exec "$GW_NS" "$SLUICE_BIN" clients || true
hcheck "encoding is MPPE 128 bit, stateless" test "$(client_field encoding)" = "MPPE 128 bit, stateless"
hcheck "the route to the office network is installed" bash -c "ip -n $GW_NS route show 172.30.0.0/24 | grep -q sluice0"
hcheck "ping the office network through the tunnel" ip netns exec "$GW_NS" ping -c 3 -i 0.3 -W 3 172.30.0.1
wait_mark guest tunnel-up 90
if ip netns exec "$GW_NS" iperf3 -c 172.30.0.1 -t 5 -J >"$SW/iperf.json" 2>"$SW/iperf.err"; then
  log "FIGURE iperf3 Sluice → pptpd guest (TCG): $(python3 -c "import json; print(round(json.load(open('$SW/iperf.json'))['end']['sum_received']['bits_per_second']/1e6, 1))") Mbit/s"
else
  hcheck "iperf3 through the tunnel" false
fi
wait_mark guest hung-up 90
t1=$(date +%s.%N)
back=$(until_connected 60) || back=timeout
hcheck "Sluice redials after the server hung up" test "$back" != timeout
log "FIGURE server hang-up noticed → Connected again: $(python3 -c "print(f'{$(date +%s.%N) - $t1:.2f}')")s (reconnect.initial 1s)"
hcheck "the redial is counted" test "$(client_field attempts)" -ge 2
wait_mark guest redialled 90
