# Pull the plug on the guest (SIGKILL qemu: no LCP TermReq, no PPTP goodbye, no TCP FIN)
# and check the gateway reaps the session within 2 x keepaliveTimeout (5 s in the manifest)
# and returns the address to the pool.
KEEPALIVE=5
wait_mark guest up 120
gw_sessions
hcheck "one session up before the kill" test "$(sessions_py 'len([x for x in s if x["state"] == "up"])')" -eq 1
hcheck "pool metric shows one address in use" test "$(metric sluice_pool_addresses_used)" -eq 1
free_before=$(metric sluice_pool_addresses_free)
guest_kill guest; touch "$SW/guest-killed"
t0=$(date +%s.%N)
reaped=""
for _ in $(seq 400); do
  if [ "$(sessions_py 'len(s)')" -eq 0 ]; then reaped=$(python3 -c "import time;print(f'{time.time()-$t0:.1f}')"); break; fi
  sleep 0.1
done
echo "session reaped after ${reaped:-never} s (limit $((2 * KEEPALIVE)) s)"
hcheck "session reaped (after ${reaped:-never} s)" test -n "$reaped"
hcheck "reaped within 2 x keepaliveTimeout = $((2 * KEEPALIVE)) s (+1 s polling slack)" \
  python3 -c "import sys; sys.exit(0 if '$reaped' and float('$reaped') <= $((2 * KEEPALIVE)) + 1 else 1)"
hcheck "sessions_active back to 0" test "$(metric_sum sluice_sessions_active 'protocol="pptp"')" -eq 0
hcheck "the address returned to the pool (used 0, free $free_before -> +1)" \
  bash -c "test $(metric sluice_pool_addresses_used) -eq 0 && test $(metric sluice_pool_addresses_free) -eq $((free_before + 1))"
grep -E "session down" "$SW/gateway.log" | tail -n 1
