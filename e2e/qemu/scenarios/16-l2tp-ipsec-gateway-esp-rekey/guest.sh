# Scenario 16: the gateway rekeys the ESP SAs itself, and its Quick Mode message 3 is lost
# once (host.sh). It caps the SAs at 1 min; strongSwan proposes no lifetime (rekey=no: Life
# Duration 0, which the gateway reads as none) and answers the gateway's Quick Mode as
# responder, installing the new pair only when message 3 arrives: here when its repeated
# message 2 fetches message 3 again, about 4 s later. The gateway keeps sealing with the old
# SA until strongSwan sends on the new one, so a ping every 100 ms loses nothing across the
# switch (sealing with the new SA at once lost 35 of 427), and the same pppd carries on.
# lab-timeout: 240
source ./lib.sh

esp_spis() { ip xfrm state | awk '/proto esp spi/ {print $4}' | sort | paste -sd, -; }
wait_new_spis() {  # BEFORE: wait until the gateway's rekey changed the SPIs (<= 100 s)
  local i=0
  while [ $i -lt 100 ]; do
    [ "$(esp_spis)" != "$1" ] && [ -n "$(esp_spis)" ] && return 0
    sleep 1; i=$((i + 1))
  done
  return 1
}

ipsec_start aes128-sha256-modp2048 aes128gcm16 rekey=no
check "strongSwan: IKE SA + transport-mode CHILD_SA installed" ipsec_up
l2tp_start alice alice-secret
check "ppp0 comes up over L2TP inside ESP" l2tp_wait 40
ip route add 192.168.77.0/24 dev ppp0 2>/dev/null || true
check "ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
pppd_pid=$(pgrep -x pppd | head -n 1)
spi_before=$(esp_spis)
mark up
ping -i 0.1 -W 2 "$LAN_HOST" >/tmp/ping-rekey.log 2>&1 &
PING=$!
check "the gateway's Quick Mode installed a new ESP SA pair in the guest kernel" wait_new_spis "$spi_before"
grep -E "received.*QUICK_MODE|CHILD_SA sluice\{[0-9]+\} established|rekeying|DELETE" /tmp/charon.log | tail -n 8
sleep 3
kill -INT "$PING" 2>/dev/null || true; wait "$PING" 2>/dev/null || true
tail -n 3 /tmp/ping-rekey.log
check "no ping went missing across the switch (100 ms apart; one may be in flight at the end)" \
  test "$(ping_lost /tmp/ping-rekey.log)" -le 1
check "the same pppd still runs" test "$(pgrep -x pppd | head -n 1)" = "$pppd_pid"
check "ping a host on the gateway side after the rekey" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
mark rekeyed
sleep 5  # the host hook checks the gateway while the session is still up
l2tp_stop
ipsec_stop
summary
