# Scenario 15: the gateway rekeys Phase 1 itself. The manifest caps the ISAKMP SA at 1 min
# while strongSwan proposes 3 h, so about 45-50 s after Main Mode the gateway starts its own
# Main Mode towards the guest; stock strongSwan answers it as responder, adopts the ESP SAs
# into the new IKE SA (its IKEv1 reauthentication handling), and the old ISAKMP SA is
# deleted. The L2TP tunnel and the PPP session inside never notice: same pppd, ping on.
# lab-timeout: 240
source ./lib.sh

established() { grep -cE "IKE_SA sluice\[[0-9]+\] established" /tmp/charon.log || true; }
wait_second_ike_sa() {
  local i=0
  while [ $i -lt 100 ]; do
    [ "$(established)" -ge 2 ] && return 0
    sleep 1; i=$((i + 1))
  done
  return 1
}
one_ike_sa() {
  local i=0
  while [ $i -lt 20 ]; do
    ipsec status 2>/dev/null | grep -q "Security Associations (1 up" && return 0
    sleep 1; i=$((i + 1))
  done
  ipsec status; return 1
}

ipsec_start aes128-sha1-modp2048 aes128-sha1
check "strongSwan: IKE SA + transport-mode CHILD_SA installed" ipsec_up
l2tp_start alice alice-secret
check "ppp0 comes up over L2TP inside ESP" l2tp_wait 40
ip route add 192.168.77.0/24 dev ppp0 2>/dev/null || true
check "ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
pppd_pid=$(pgrep -x pppd | head -n 1)
spi_before=$(ip xfrm state | awk '/proto esp spi/ {print $4}' | sort | paste -sd, -)
mark up
ping -i 1 -W 2 "$LAN_HOST" >/tmp/ping-rekey.log 2>&1 &
PING=$!
check "the gateway started a Main Mode and strongSwan established it as responder" wait_second_ike_sa
grep -E "initiating a Main Mode|IKE_SA sluice\[[0-9]+\] established|received DELETE|deleting IKE_SA|adopting|CHILD_SA" /tmp/charon.log | tail -n 12
check "strongSwan adopted the ESP SAs into the new IKE SA" \
  grep -q "detected reauth of existing IKE_SA, adopting 1 children" /tmp/charon.log
check "strongSwan is left with one IKE SA (the old one deleted)" one_ike_sa
sleep 5
kill -INT "$PING" 2>/dev/null || true; wait "$PING" 2>/dev/null || true
tail -n 3 /tmp/ping-rekey.log
check "ping went on through the rekey (at most 1 reply lost)" test "$(ping_lost /tmp/ping-rekey.log)" -le 1
check "the same ESP SAs carry on (no Quick Mode needed)" \
  test "$(ip xfrm state | awk '/proto esp spi/ {print $4}' | sort | paste -sd, -)" = "$spi_before"
check "the same pppd still runs" test "$(pgrep -x pppd | head -n 1)" = "$pppd_pid"
check "ping a host on the gateway side after the rekey" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
mark rekeyed
sleep 5  # the host hook checks the gateway while the session is still up
l2tp_stop
ipsec_stop
summary
