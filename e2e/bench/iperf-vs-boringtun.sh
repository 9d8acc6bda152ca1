#!/usr/bin/env bash
# iperf3 TCP through one tunnel session, as a user measures it, next to boringtun (a
# user-space WireGuard) and plain veth in the same run on this machine:
#
#   [client ns] --veth 10.97.0.0/24-- [gateway ns: iperf3 -s]
#
#   - veth:      iperf3 straight over the veth (the ceiling, no tunnel)
#   - boringtun: boringtun-cli --threads 1 at both ends, configured with `wg` (MTU 1400)
#   - Sluice:    the gateway (standalone) and the in-repo client with a TUN device (MTU 1400),
#                one session per type: PPTP MPPE-128 stateless and stateful, L2TP plain, and
#                L2TP/IPsec with ESP AES-128-GCM, AES-256-CBC/SHA-256 and 3DES/SHA-1
#
# Each figure is the mean of RUNS runs of SECONDS s, per direction (up: client → gateway,
# down: -R). Then ping RTT p50/p99 through the same path, idle and while an iperf3 upload
# saturates it (bufferbloat). CPU is the user+system time of both tunnel ends over the run, in % of one core.
# Ratios are to boringtun of the same run. Prints figures; asserts nothing. Needs root.
#
# Knobs: RUNS (2), SECONDS (8), TYPES (all of: veth boringtun pptp pptp-stateful l2tp
# ipsec-gcm ipsec-cbc ipsec-3des), SLUICE_BIN / CLIENT_BIN (use `cargo build --profile dist`
# binaries for figures of the shipped build: target/dist/), TUN_OFFLOAD (true; false reads and
# writes the TUN devices one packet at a time, as before issue 21).
# boringtun: `cargo install boringtun-cli` and `apt-get install --no-install-recommends
# wireguard-tools`; without them its rows print SKIPPED (and the ratios are left out).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$repo/target/release/sluice-dataplane}
CLIENT_BIN=${CLIENT_BIN:-$(dirname "$SLUICE_BIN")/sluice-client}
source "$repo/e2e/netns/lib.sh"
trap netns_cleanup EXIT

RUNS=${RUNS:-2}
SECONDS_PER_RUN=${SECONDS:-8}
TYPES=${TYPES:-veth boringtun pptp pptp-stateful l2tp ipsec-gcm ipsec-cbc ipsec-3des}
TUN_OFFLOAD=${TUN_OFFLOAD:-true}
BORINGTUN=${BORINGTUN:-$(command -v boringtun-cli || echo "$HOME/.cargo/bin/boringtun-cli")}
command -v iperf3 >/dev/null || { echo "iperf3 is required" >&2; exit 2; }

GW=$(mkns gw); CL=$(mkns cl)
link "$GW" 10.97.0.1/24 "$CL" 10.97.0.2/24
bg "$GW" iperf3 iperf3 -s

M="$WORK/gateway.yaml"
cat >"$M" <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: bench }
spec:
  pptp: { mppe: { stateful: allow } }
  l2tp:
    enabled: true
    allowUnencrypted: true
    ipsec: { preSharedKeySecretRef: { name: psk, key: psk } }
  ppp: { localAddress: 10.200.0.1, addressPool: 10.200.0.0/24 }
---
apiVersion: v1
kind: Secret
metadata: { name: psk }
stringData: { psk: bench-pre-shared-key }
---
apiVersion: v1
kind: Secret
metadata: { name: bench }
stringData: { password: bench-password }
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: bench }
spec: { gatewayRef: { name: bench }, passwordSecretRef: { name: bench } }
YAML

# cpu PID...: user+system clock ticks of the processes so far.
cpu() {
  local t=0 p
  for p in "$@"; do
    [ -r "/proc/$p/stat" ] && t=$((t + $(awk '{ print $14 + $15 }' "/proc/$p/stat")))
  done
  echo "$t"
}

# measure NAME TARGET PID...: RUNS iperf3 runs each way to TARGET from the client namespace;
# appends "NAME dir mbit cpu%" lines to $WORK/results.
measure() {
  local name=$1 target=$2; shift 2
  local dir args run c0 c1 bps hz total cpus
  hz=$(getconf CLK_TCK)
  for dir in up down; do
    args=(); [ "$dir" = down ] && args=(-R)
    total=0 cpus=0
    for run in $(seq "$RUNS"); do
      c0=$(cpu "$@")
      bps=$(ip netns exec "$CL" iperf3 -c "$target" -t "$SECONDS_PER_RUN" -O 1 -J "${args[@]}" |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' ||
        echo 0)
      c1=$(cpu "$@")
      total=$((total + bps))
      cpus=$((cpus + (c1 - c0) * 100 / hz))
    done
    echo "$name $dir $((total / RUNS / 1000000)) $((cpus / RUNS / (SECONDS_PER_RUN + 1)))" >>"$WORK/results"
    log "$name $dir: $((total / RUNS / 1000000)) Mbit/s"
  done
  latency "$name" "$target"
}

# latency NAME TARGET: ping RTT through the path, idle and while an iperf3 upload saturates
# it (bufferbloat); appends "NAME p50-idle p99-idle p50-load p99-load" (ms) to $WORK/latency.
latency() {
  local name=$1 target=$2 idle load
  idle=$(ip netns exec "$CL" ping -n -q -i 0.05 -c 40 -W 2 "$target" >/dev/null 2>&1; \
    ip netns exec "$CL" ping -n -i 0.05 -c 60 -W 2 "$target" 2>/dev/null | rtts)
  ip netns exec "$CL" iperf3 -c "$target" -t "$SECONDS_PER_RUN" >/dev/null 2>&1 &
  local ip3=$!
  sleep 1
  load=$(ip netns exec "$CL" ping -n -i 0.05 -c $(((SECONDS_PER_RUN - 2) * 20)) -W 2 "$target" 2>/dev/null | rtts)
  wait "$ip3" 2>/dev/null || true
  echo "$name $idle $load" >>"$WORK/latency"
}

# rtts: ping's output on stdin -> "p50 p99" of its RTTs in ms (or "- -").
rtts() {
  python3 -c '
import re, sys
r = sorted(float(m) for m in re.findall(r"time=([0-9.]+)", sys.stdin.read()))
pick = lambda q: f"{r[min(len(r) - 1, int(q * len(r)))]:.2f}" if r else "-"
print(pick(0.5), pick(0.99))'
}

boringtun_up() {
  local k1 k2
  k1=$(wg genkey); k2=$(wg genkey)
  bg "$GW" bt-gw "$BORINGTUN" wgs0 --foreground --disable-drop-privileges --threads 1
  BT_GW=$BG_PID
  bg "$CL" bt-cl "$BORINGTUN" wgc0 --foreground --disable-drop-privileges --threads 1
  BT_CL=$BG_PID
  for _ in $(seq 50); do
    ip -n "$GW" link show wgs0 >/dev/null 2>&1 && ip -n "$CL" link show wgc0 >/dev/null 2>&1 && break
    sleep 0.1
  done
  ip netns exec "$GW" wg set wgs0 private-key <(echo "$k1") listen-port 51820 \
    peer "$(echo "$k2" | wg pubkey)" allowed-ips 10.101.0.2/32
  ip netns exec "$CL" wg set wgc0 private-key <(echo "$k2") \
    peer "$(echo "$k1" | wg pubkey)" allowed-ips 10.101.0.1/32 endpoint 10.97.0.1:51820
  ip -n "$GW" addr add 10.101.0.1/24 dev wgs0; ip -n "$GW" link set wgs0 mtu 1400 up
  ip -n "$CL" addr add 10.101.0.2/24 dev wgc0; ip -n "$CL" link set wgc0 mtu 1400 up
  ip netns exec "$CL" ping -c 2 -W 2 10.101.0.1 >/dev/null
}

# session NAME CLIENT-ARGS...: a fresh gateway and one client session with a TUN device.
session() {
  local name=$1; shift
  RUST_LOG=warn bg "$GW" "gw-$name" "$SLUICE_BIN" --manifests "$M" --metrics-listen 10.97.0.1:9810 \
    --tun-offload="$TUN_OFFLOAD"
  local gw=$BG_PID
  for _ in $(seq 100); do http "$GW" http://10.97.0.1:9810/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  bg "$CL" "cl-$name" "$CLIENT_BIN" --server 10.97.0.1 --user bench --password bench-password \
    --tun slc0 --tun-offload="$TUN_OFFLOAD" "$@"
  local cl=$BG_PID
  if wait_for "$WORK/cl-$name.log" "^UP " 30; then
    measure "$name" 10.200.0.1 "$gw" "$cl"
  else
    log "$name: no session ($(tail -n 2 "$WORK/cl-$name.log" | tr '\n' ' '))"
    echo "$name up 0 0" >>"$WORK/results"
  fi
  kill "$cl" "$gw" 2>/dev/null || true
  wait "$cl" "$gw" 2>/dev/null || true
}

: >"$WORK/results"; : >"$WORK/latency"
for t in $TYPES; do
  case $t in
    veth) measure veth 10.97.0.1 ;;
    boringtun)
      if [ -x "$BORINGTUN" ] && command -v wg >/dev/null; then
        boringtun_up && measure boringtun 10.101.0.1 "$BT_GW" "$BT_CL"
        kill "$BT_GW" "$BT_CL" 2>/dev/null || true
      else
        echo "SKIPPED: boringtun (cargo install boringtun-cli; apt-get install wireguard-tools)" >&2
      fi ;;
    pptp) session pptp ;;
    pptp-stateful) session pptp-stateful --mppe-stateful ;;
    l2tp) session l2tp --protocol l2tp ;;
    ipsec-gcm) session ipsec-gcm --protocol l2tp --ipsec-psk bench-pre-shared-key --esp-proposal aes128gcm16 ;;
    ipsec-cbc) session ipsec-cbc --protocol l2tp --ipsec-psk bench-pre-shared-key --esp-proposal aes256-sha256 ;;
    ipsec-3des) session ipsec-3des --protocol l2tp --ipsec-psk bench-pre-shared-key --esp-proposal 3des-sha1 ;;
    *) echo "unknown type $t" >&2; exit 2 ;;
  esac
done

echo "## iperf3 TCP, one session, mean of $RUNS × ${SECONDS_PER_RUN} s; TUN offload $TUN_OFFLOAD; $(nproc) cores, $(uname -r)"
python3 - "$WORK/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
base = {d: int(m) for n, d, m, c in rows if n == "boringtun"}
print(f"{'path':<16}{'dir':<6}{'Mbit/s':>9}{'× boringtun':>13}{'CPU % (both ends)':>19}")
for n, d, m, c in rows:
    ratio = f"{int(m) / base[d]:.2f}" if base.get(d) else "-"
    cpu = "-" if n == "veth" else c
    print(f"{n:<16}{d:<6}{m:>9}{ratio:>13}{cpu:>19}")
PY
echo
echo "## ping RTT through the path (ms), idle and under an iperf3 upload"
python3 - "$WORK/latency" <<'PY'
import sys
print(f"{'path':<16}{'p50 idle':>10}{'p99 idle':>10}{'p50 load':>10}{'p99 load':>10}")
for l in open(sys.argv[1]):
    n, *v = l.split()
    print(f"{n:<16}" + "".join(f"{x:>10}" for x in v))
PY
