# Remove alice from the manifest and SIGHUP the gateway once both users are up.
wait_mark guest up 120
gw_sessions
hcheck "alice and bob are up" test "$(sessions_py 'sorted(x["user"] for x in s if x["state"] == "up")')" = "['alice', 'bob']"
bob_call=$(sessions_py '[x["call_id"] for x in s if x["user"] == "bob"][0]')
hcheck "reload applied" gateway_reload "$LAB_DIR/scenarios/09-reload-remove-user/manifest-reloaded.yaml"
hcheck "configuration applied (not rejected)" grep -q "configuration applied" "$SW/gateway.log"
for _ in $(seq 100); do [ "$(sessions_py '[x["user"] for x in s]')" = "['bob']" ] && break; sleep 0.1; done
gw_sessions
hcheck "only bob's session is left, with the same call" \
  test "$(sessions_py '[(x["user"], x["call_id"], x["state"]) for x in s]')" = "[('bob', $bob_call, 'up')]"
