#!/usr/bin/env bash
# Throughput baseline (not part of the test command): iperf3 TCP through a PPTP /
# MPPE-128 tunnel from a client guest (pppd + pptp-linux) to
#   (a) a server guest running stock pptpd + pppd (kernel PPP/MPPE), and
#   (b) an identical server guest running sluice-dataplane (this repo's binary),
# same image, same vCPUs (GUEST_CPUS, default 1) and memory (GUEST_MEM, default 512),
# one after the other in one run; prints both figures and their ratio.
# Needs root; guests run under qemu TCG, so absolute numbers are emulation-bound.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ "$(id -u)" -eq 0 ] || die "needs root"
[ -x "$SLUICE_BIN" ] || die "missing $SLUICE_BIN: cargo build --release -p sluice-dataplane"
trap lab_teardown EXIT
lab_image

phase() {  # NAME SERVER_DIR [extra file for the server archive]; sets RATE (Mbit/s)
  local name=$1 sdir=$2 extra=${3:-} rate
  lab_up "$LAB_WORK/$name"
  if [ -n "$extra" ]; then
    mkdir -p "$SW/extra"; cp "$extra" "$SW/extra/"
    guest_tar "$SW/server.tar" "$sdir" "$SW/extra"
  else
    guest_tar "$SW/server.tar" "$sdir"
  fi
  guest_tar "$SW/client.tar" "$here/bench/client"
  guest_boot server 1 "$SW/server.tar" 300
  local spid=$GUEST_PID
  guest_boot client 2 "$SW/client.tar" 300
  local cpid=$GUEST_PID
  wait "$cpid" || true
  for _ in $(seq 300); do kill -0 "$spid" 2>/dev/null || break; sleep 0.1; done
  rate=$(sed -n 's/^BENCH-RESULT: *\([0-9.]*\).*/\1/p' "$SW/client.serial.log" | tail -n 1)
  if [ -z "$rate" ] || [ "$(guest_verdict client)" != PASS ]; then
    cat "$SW/client.serial.log" "$SW/server.serial.log" >&2
    die "$name: no throughput figure (logs in $SW)"
  fi
  lab_teardown
  RATE=$rate
}

log "phase a: pptpd + kernel MPPE in the server guest"
phase pptpd "$here/bench/server-pptpd"; A=$RATE
log "phase b: sluice-dataplane in the server guest"
phase sluice "$here/bench/server-sluice" "$SLUICE_BIN"; B=$RATE
echo "iperf3 TCP through PPTP/MPPE-128, qemu TCG guests with ${GUEST_CPUS} vCPU / ${GUEST_MEM} MiB each:"
echo "  (a) pptpd + pppd (kernel PPP/MPPE): $A Mbit/s"
echo "  (b) sluice-dataplane:               $B Mbit/s"
python3 -c "print(f'  ratio sluice / kernel: {$B / $A:.2f}')"
rm -rf "$LAB_WORK"
