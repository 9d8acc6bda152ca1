#!/usr/bin/env bash
# Not a test: runs VM-lab scenarios (stock pppd + pptp-linux, xl2tpd, strongSwan in qemu
# guests against sluice-dataplane) with tcpdump on the lab's bridge, one pcap per scenario,
# for the fuzz seed corpora (docs/fuzzing.md; e2e/fuzz/seeds-from-pcap.py turns the pcaps
# into seeds). Needs what e2e/qemu/run.sh needs, plus tcpdump.
#
#   e2e/qemu/record/capture.sh OUTDIR SCENARIO...
#   e.g. e2e/qemu/record/capture.sh target/fuzz-captures 01 10 e2e/qemu/record/strongswan-keys
#
# The capture runs inside the lab's gateway namespace (br0: guests' side of the gateway;
# behind-NAT scenarios are seen after the NAT). Only the gateway's protocols are kept: PPTP
# control (TCP 1723), GRE, L2TP (UDP 1701), IKE / NAT-T (UDP 500, 4500) and ESP. With
# SLUICE_E2E_KEEP=1 the lab's logs stay (the strongswan-keys recording prints charon's keys
# on the guest's console, which seeds-from-pcap.py uses to decrypt IKE and ESP).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: $0 OUTDIR SCENARIO..." >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "needs root" >&2; exit 1; }
command -v tcpdump >/dev/null || { echo "tcpdump not found: apt-get install -y tcpdump" >&2; exit 1; }
out=$(mkdir -p "$1" && cd "$1" && pwd); shift
filter='tcp port 1723 or ip proto 47 or udp port 1701 or udp port 500 or udp port 4500 or ip proto 50'

for s in "$@"; do
  name=$(basename "$s")
  # One run.sh per scenario: its namespaces are named after its PID (lib.sh: LAB_TAG).
  LAB_WORK=$(mktemp -d /tmp/sluice-capture.XXXXXX)
  export LAB_WORK
  SLUICE_E2E_KEEP=1 "$here/../run.sh" "$s" >"$out/$name.run.log" 2>&1 &
  lab=$!
  ns="slq$lab-gw"
  dump=""
  for _ in $(seq 600); do
    if ip netns exec "$ns" ip link show br0 >/dev/null 2>&1; then
      ip netns exec "$ns" tcpdump -i br0 -s 0 -U -w "$out/$name.pcap" "$filter" \
        >"$out/$name.tcpdump.log" 2>&1 &
      dump=$!
      break
    fi
    kill -0 "$lab" 2>/dev/null || break
    sleep 0.2
  done
  rc=0; wait "$lab" || rc=$?
  [ -n "$dump" ] && { kill "$dump" 2>/dev/null || true; wait "$dump" 2>/dev/null || true; }
  # The console logs (charon's keys for the strongswan-keys recording) next to the pcap.
  for f in "$LAB_WORK"/*/*.serial.log; do
    [ -f "$f" ] && cp "$f" "$out/$name.$(basename "$f")"
  done
  rm -rf "$LAB_WORK"
  echo "$name: run.sh exit $rc, $(stat -c %s "$out/$name.pcap" 2>/dev/null || echo 0) bytes captured"
done
