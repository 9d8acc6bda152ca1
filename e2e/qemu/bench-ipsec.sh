#!/usr/bin/env bash
# L2TP/IPsec throughput baseline (not part of the test command): iperf3 TCP through
# L2TP inside ESP (IKEv1 PSK aes128-sha1-modp2048, ESP aes128-sha1, transport mode) from
# a client guest (stock strongSwan with kernel XFRM + xl2tpd + pppd, bench/ipsec-client) to
#   (a) a server guest running stock strongSwan (charon, kernel XFRM) + xl2tpd + pppd
#       (bench/ipsec-server-kernel), and
#   (b) an identical server guest running sluice-dataplane (bench/ipsec-server-sluice,
#       scenario 12's policy), user-space IKE/ESP/L2TP/PPP,
# same image, same vCPUs (GUEST_CPUS, default 1) and memory (GUEST_MEM, default 512), one
# after the other in one run; iperf3 -s runs on the server guest (10.200.0.1, through the
# tunnel). Prints both figures, their ratio and the host's load average.
# BENCH_SECONDS (default 10): iperf3 duration; BENCH_KEEP=1 keeps the logs. Needs root; guests run under qemu TCG, so
# absolute numbers are emulation-bound.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SLUICE_BIN" ] || die "missing $SLUICE_BIN: cargo build --release -p sluice-dataplane"
BENCH_SECONDS=${BENCH_SECONDS:-10}
trap lab_teardown EXIT
lab_image

load() { cut -d' ' -f1-3 /proc/loadavg; }

phase() {  # NAME SERVER_DIR [extra file for the server archive]; sets RATE (Mbit/s), LOAD
  local name=$1 sdir=$2 extra=${3:-} rate
  lab_up "$LAB_WORK/$name"
  mkdir -p "$SW/server-extra" "$SW/client-extra"
  [ -n "$extra" ] && cp "$extra" "$SW/server-extra/"
  guest_tar "$SW/server.tar" "$sdir" "$SW/server-extra"
  printf '%s\n' "BENCH_SERVER=10.99.0.11" "BENCH_BEACON=5299" "BENCH_SECONDS=$BENCH_SECONDS" \
    >"$SW/client-extra/bench.env"
  guest_tar "$SW/client.tar" "$here/bench/ipsec-client" "$SW/client-extra"
  guest_boot server 1 "$SW/server.tar" 400
  local spid=$GUEST_PID
  guest_boot client 2 "$SW/client.tar" 400
  local cpid=$GUEST_PID
  # Until the client starts iperf3, a server guest that ends (it failed) ends the phase.
  while kill -0 "$cpid" 2>/dev/null && ! grep -q "^SLUICE-MARK: iperf-start" "$SW/client.serial.log" 2>/dev/null; do
    kill -0 "$spid" 2>/dev/null || { log "$name: the server guest ended before the test"; kill "$cpid" 2>/dev/null || true; break; }
    sleep 0.5
  done
  wait "$cpid" || true
  LOAD=$(load)
  for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  rate=$(sed -n 's/^BENCH-RESULT: *\([0-9.]*\).*/\1/p' "$SW/client.serial.log" | tail -n 1)
  if [ -z "$rate" ] || [ "$(guest_verdict client)" != PASS ]; then
    cat "$SW/client.serial.log" "$SW/server.serial.log" >&2
    die "$name: no throughput figure (logs in $SW)"
  fi
  log "$name: $rate Mbit/s (load $LOAD)"
  lab_teardown
  RATE=$rate
}

log "phase a: strongSwan (kernel XFRM) + xl2tpd + pppd in the server guest"
phase kernel "$here/bench/ipsec-server-kernel"; A=$RATE; LA=$LOAD
log "phase b: sluice-dataplane in the server guest"
phase sluice "$here/bench/ipsec-server-sluice" "$SLUICE_BIN"; B=$RATE; LB=$LOAD
echo "iperf3 TCP ${BENCH_SECONDS} s through L2TP/IPsec (IKEv1 PSK, ESP aes128-sha1 transport), qemu TCG guests with ${GUEST_CPUS} vCPU / ${GUEST_MEM} MiB each:"
echo "  (a) strongSwan + xl2tpd + pppd (kernel XFRM/PPP): $A Mbit/s   (host load $LA)"
echo "  (b) sluice-dataplane:                             $B Mbit/s   (host load $LB)"
python3 -c "print(f'  ratio sluice / kernel: {$B / $A:.2f}')"
if [ -n "${BENCH_KEEP:-}" ]; then log "logs kept in $LAB_WORK"; else rm -rf "$LAB_WORK"; fi
