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
# down: -R). Then ping RTT p50/p99 through the same path, idle and while an iperf3 upload,
# then a download, saturates it (bufferbloat; with tcpdump installed, where the ping waits
# under each: client side or gateway side of the tunnel; and the upload sender's cwnd and
# RTT), and iperf3 UDP client → gateway as fast as the sender goes at IP packets of 64 and
# 1400 octets (packets per second sent and delivered, delivered share).
# CPU is the user+system time of both tunnel ends over the run, in % of one core, and the
# gateway end's alone in CPU seconds per Gbit delivered.
# Ratios are to boringtun of the same run. Prints figures; asserts nothing. Needs root.
#
# Aggregate (types boringtun-x10, pptp-x10, ipsec-gcm-x10): PARALLEL clients, each in its own
# namespace on a bridge, one session and one iperf3 flow each, all at once; boringtun's gateway
# end then runs one thread per core, its clients one each.
#
# Knobs: RUNS (2), SECONDS (8), TYPES (all of: veth boringtun pptp pptp-stateful l2tp
# ipsec-gcm ipsec-cbc ipsec-3des boringtun-x10 pptp-x10 ipsec-gcm-x10), PARALLEL (10), SLUICE_BIN / CLIENT_BIN (use `cargo build --profile dist`
# binaries for figures of the shipped build: target/dist/), TUN_OFFLOAD (true; false reads and
# writes the TUN devices one packet at a time, as before issue 21), UDP_SIZES ("64 1400";
# empty skips the UDP step), GATEWAY_ARGS (more arguments for the gateway, e.g. --rx-threads 1;
# --aqm-target-ms 0 turns its receive queues' CoDel off), CLIENT_ARGS (the same for the
# in-repo clients), PERF (a directory:
# `perf record -g` of both tunnel ends during each type's first run per direction, for
# `perf report -i DIR/NAME-DIR.data --no-children --sort comm,sym`), TUN_TXQUEUELEN (set on
# both Sluice TUN devices once the session is up; by default the gateway's has the kernel's 500, the
# client's 32: its --tun-txqueuelen), CC (the
# congestion control of the loaded pings' iperf3 flows, e.g. cubic, what Windows, macOS and
# most Linux distributions use; default: the system's).
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
TYPES=${TYPES:-veth boringtun pptp pptp-stateful l2tp ipsec-gcm ipsec-cbc ipsec-3des boringtun-x10 pptp-x10 ipsec-gcm-x10}
TUN_OFFLOAD=${TUN_OFFLOAD:-true}
UDP_SIZES=${UDP_SIZES-64 1400}
PARALLEL=${PARALLEL:-10}
GATEWAY_ARGS=${GATEWAY_ARGS:-}
CLIENT_ARGS=${CLIENT_ARGS:-}
PERF=${PERF:-}
TUN_TXQUEUELEN=${TUN_TXQUEUELEN:-}
TUNS=   # the client's and the gateway's tunnel devices of the type being measured
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

# per_gbit TICKS BPS: CPU seconds (TICKS clock ticks) per Gbit delivered over SECONDS_PER_RUN
# at BPS bits per second summed over the runs (or "-").
per_gbit() {
  python3 -c "b=$2*$SECONDS_PER_RUN/1e9; print(f'{$1/$(getconf CLK_TCK)/b:.2f}' if b else '-')"
}

# measure NAME TARGET GATEWAY-PID [PID...]: RUNS iperf3 runs each way to TARGET from the
# client namespace; appends "NAME dir mbit cpu% gw-cpu-s-per-gbit" lines to $WORK/results
# (cpu%: both tunnel ends; the last: the gateway end's CPU seconds per Gbit delivered).
measure() {
  local name=$1 target=$2; shift 2
  local dir args run c0 c1 g0 g1 bps hz total cpus gcpu perf_pid=
  hz=$(getconf CLK_TCK)
  for dir in up down; do
    args=(); [ "$dir" = down ] && args=(-R)
    total=0 cpus=0 gcpu=0
    for run in $(seq "$RUNS"); do
      c0=$(cpu "$@"); g0=$(cpu "$1")
      if [ -n "$PERF" ] && [ "$run" = 1 ] && [ "$name" != veth ]; then
        mkdir -p "$PERF"
        perf record -q -F 499 -g -p "$(IFS=,; echo "$*")" -o "$PERF/$name-$dir.data" \
          -- sleep "$SECONDS_PER_RUN" >/dev/null 2>&1 &
        perf_pid=$!
      fi
      bps=$(ip netns exec "$CL" iperf3 -c "$target" -t "$SECONDS_PER_RUN" -O 1 -J "${args[@]}" |
        python3 -c 'import json,sys; print(int(json.load(sys.stdin)["end"]["sum_received"]["bits_per_second"]))' ||
        echo 0)
      c1=$(cpu "$@"); g1=$(cpu "$1")
      [ -n "$perf_pid" ] && { wait "$perf_pid" 2>/dev/null || true; perf_pid=; }
      total=$((total + bps))
      cpus=$((cpus + (c1 - c0) * 100 / hz))
      gcpu=$((gcpu + g1 - g0))
    done
    echo "$name $dir $((total / RUNS / 1000000)) $((cpus / RUNS / (SECONDS_PER_RUN + 1)))" \
      "$(per_gbit "$gcpu" "$total")" >>"$WORK/results"
    log "$name $dir: $((total / RUNS / 1000000)) Mbit/s"
  done
  latency "$name" "$target"
  udp_rate "$name" "$target"
}

# udp_rate NAME TARGET: iperf3 UDP client → TARGET as fast as the sender can go, with IP
# packets of 64 and 1400 octets (UDP payload 36 and 1372; 1400 is the tunnel MTU); appends
# "NAME size sent-pps delivered-pps delivered-%" to $WORK/udp.
udp_rate() {
  local name=$1 target=$2 size
  for size in $UDP_SIZES; do
    ip netns exec "$CL" iperf3 -u -b 0 -l $((size - 28)) -c "$target" -t "$SECONDS_PER_RUN" -J 2>/dev/null |
      python3 -c '
import json, sys
name, size = sys.argv[1], sys.argv[2]
try:
    end = json.load(sys.stdin)["end"]
    sent = end.get("sum_sent") or end["sum"]
    got = end.get("sum_received") or end["sum"]
    secs = float(sent["seconds"]) or 1.0
    total = int(sent["packets"])
    delivered = int(got["packets"]) - int(got["lost_packets"])
    print(name, size, round(total / secs), round(delivered / secs), f"{100 * delivered / total:.1f}" if total else "-")
except Exception:
    print(name, size, 0, 0, "-")' "$name" "$size" >>"$WORK/udp"
  done
}

# latency NAME TARGET: ping RTT through the path, idle, while an iperf3 upload saturates it
# and while a download does (bufferbloat); appends "NAME p50-idle p99-idle p50-up p99-up
# p50-down p99-down" (ms), the hops under each (see `hops`) and the upload sender's view to
# $WORK/latency.
latency() {
  local name=$1 target=$2 idle up down
  idle=$(ip netns exec "$CL" ping -n -q -i 0.05 -c 40 -W 2 "$target" >/dev/null 2>&1; \
    ip netns exec "$CL" ping -n -i 0.05 -c 60 -W 2 "$target" 2>/dev/null | rtts)
  ip netns exec "$CL" iperf3 -c "$target" -t "$SECONDS_PER_RUN" ${CC:+-C "$CC"} >/dev/null 2>&1 &
  local ip3=$!
  sleep 1
  # Where the loaded ping waits: its request seen on the client's TUN, on the gateway's veth
  # (the tunnel packet, small among the upload's full ones) and on the gateway's TUN.
  capture_hops up "src 10.97.0.2"
  # The sender's own view halfway through: its congestion window and smoothed RTT.
  (sleep $((SECONDS_PER_RUN / 2)); ip netns exec "$CL" ss -tin dst "$target" >"$WORK/ss.txt" 2>/dev/null) &
  local ssp=$!
  up=$(loaded_ping "$target")
  wait "$ip3" "$ssp" "${DUMPS[@]}" 2>/dev/null || true
  # The same under a download (the gateway's TUN ring and the client's receive queue): here
  # the reply's tunnel packet is the small one on the veth, from the gateway.
  ip netns exec "$CL" iperf3 -R -c "$target" -t "$SECONDS_PER_RUN" ${CC:+-C "$CC"} >/dev/null 2>&1 &
  ip3=$!
  sleep 1
  capture_hops down "src 10.97.0.1"
  down=$(loaded_ping "$target")
  wait "$ip3" "${DUMPS[@]}" 2>/dev/null || true
  echo "$name $idle $up $down $(hops up) $(hops down) $(sender)" >>"$WORK/latency"
}

# capture_hops DIR VETH_SRC: tcpdump the loaded ping on the client's TUN, the gateway's TUN and
# (its tunnel packets from VETH_SRC, the small ones) the veth, into $WORK/hop-{cl,gw,veth}-DIR.txt;
# sets DUMPS (nothing without tcpdump or for boringtun, whose TUNS is empty).
capture_hops() {
  local dir=$1 vsrc=$2 t ns dev filter tag
  DUMPS=()
  [ -n "$TUNS" ] && command -v tcpdump >/dev/null || return 0
  for t in "$CL:${TUNS%% *}:icmp:cl" "$GW:${TUNS##* }:icmp:gw" "$GW:any:$vsrc and less 200 and not tcp:veth"; do
    IFS=: read -r ns dev filter tag <<<"$t"
    ip netns exec "$ns" timeout $((SECONDS_PER_RUN - 1)) tcpdump -tt -n -i "$dev" "$filter" \
      >"$WORK/hop-$tag-$dir.txt" 2>/dev/null &
    DUMPS+=($!)
  done
}

# loaded_ping TARGET: "p50 p99" of a ping every 50 ms from the client for the rest of a loaded run.
loaded_ping() {
  ip netns exec "$CL" ping -n -i 0.05 -c $(((SECONDS_PER_RUN - 2) * 20)) -W 2 "$1" 2>/dev/null | rtts
}

# hops DIR: from the captures of the loaded ping under the upload (DIR up) or the download
# (down), p50s in ms. Up: the request's way from the client's TUN to the gateway's TUN, its
# client side and gateway side (split at the gateway's veth: before it the client's TUN queue
# and tunnel end, after it the gateway's socket queue and tunnel end), and the reply's way
# back. Down: the reply's way from the gateway's TUN to the client's, its gateway side (the
# gateway's TUN ring and tunnel end) and client side (the client's socket queue and tunnel
# end). Dashes without captures.
hops() {
  local dir=$1
  [ -n "$TUNS" ] && [ -s "$WORK/hop-cl-$dir.txt" ] || {
    if [ "$dir" = up ]; then echo "- - - -"; else echo "- - -"; fi
    return
  }
  python3 - "$dir" "$WORK/hop-cl-$dir.txt" "$WORK/hop-gw-$dir.txt" "$WORK/hop-veth-$dir.txt" <<'PY'
import re, sys
def pings(f):
    d = {}
    for l in open(f):
        m = re.match(r"([\d.]+) .*ICMP echo (request|reply), id \d+, seq (\d+)", l)
        if m:
            d.setdefault((m.group(2), int(m.group(3))), float(m.group(1)))
    return d
direction, c, g = sys.argv[1], pings(sys.argv[2]), pings(sys.argv[3])
veth = sorted(float(l.split()[0]) for l in open(sys.argv[4]) if l[:1].isdigit())
whole, first, second, back = [], [], [], []
for (kind, seq), t1 in c.items():
    if kind != "request":
        continue
    t2, t3, t4 = g.get(("request", seq)), g.get(("reply", seq)), c.get(("reply", seq))
    # Upload: the request crosses the veth between t1 and t2; download: the reply, t3 to t4.
    a, b = (t1, t2) if direction == "up" else (t3, t4)
    if a is None or b is None:
        continue
    whole.append(b - a)
    mid = next((t for t in veth if a <= t <= b), None)
    if mid is not None:
        first.append(mid - a)
        second.append(b - mid)
    if direction == "up" and t3 is not None and t4 is not None:
        back.append(t4 - t3)
p50 = lambda v: f"{sorted(v)[len(v) // 2] * 1e3:.2f}" if v else "-"
print(*([p50(whole), p50(first), p50(second)] + ([p50(back)] if direction == "up" else [])))
PY
}

# sender: from `ss -tin` of the loaded upload ($WORK/ss.txt), "cwnd-KiB srtt-ms min-rtt-ms" of
# its busiest connection (iperf3's data flow, not its control connection), or "- - -".
sender() {
  python3 - "$WORK/ss.txt" <<'PY'
import re, sys
best = None
for l in open(sys.argv[1]):
    c, m, r, mr = (re.search(p + r"([\d.]+)", l) for p in ("cwnd:", "mss:", r"\brtt:", "minrtt:"))
    if c and m and r:
        kib = int(c.group(1)) * int(m.group(1)) / 1024
        if best is None or kib > best[0]:
            best = (kib, float(r.group(1)), float(mr.group(1)) if mr else None)
print(f"{best[0]:.0f} {best[1]:.2f} {best[2]:.2f}" if best and best[2] is not None else "- - -")
PY
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
    --tun-offload="$TUN_OFFLOAD" $GATEWAY_ARGS
  local gw=$BG_PID
  for _ in $(seq 100); do http "$GW" http://10.97.0.1:9810/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  bg "$CL" "cl-$name" "$CLIENT_BIN" --server 10.97.0.1 --user bench --password bench-password \
    --tun slc0 --tun-offload="$TUN_OFFLOAD" $CLIENT_ARGS "$@"
  local cl=$BG_PID
  if wait_for "$WORK/cl-$name.log" "^UP " 30; then
    TUNS="slc0 sluice0"
    if [ -n "$TUN_TXQUEUELEN" ]; then
      ip -n "$CL" link set slc0 txqueuelen "$TUN_TXQUEUELEN"
      ip -n "$GW" link set sluice0 txqueuelen "$TUN_TXQUEUELEN"
    fi
    measure "$name" 10.200.0.1 "$gw" "$cl"
  else
    log "$name: no session ($(tail -n 2 "$WORK/cl-$name.log" | tr '\n' ' '))"
    echo "$name up 0 0 -" >>"$WORK/results"
  fi
  kill "$cl" "$gw" 2>/dev/null || true
  wait "$cl" "$gw" 2>/dev/null || true
}

# Aggregate: PARALLEL clients, each in a namespace of its own (its own address, like real
# clients), on a bridge in the gateway's namespace (10.96.0.0/24); one session and one
# iperf3 flow each (to servers on ports 5300+i), all at once.
AGG_NS=()
agg_net() {
  [ ${#AGG_NS[@]} -gt 0 ] && return 0
  local i ns a b
  ip -n "$GW" link add bragg type bridge
  ip -n "$GW" addr add 10.96.0.1/24 dev bragg
  ip -n "$GW" link set bragg up
  for i in $(seq 0 $((PARALLEL - 1))); do
    ns=$(mkns "c$i"); AGG_NS+=("$ns")
    a="va$i$RANDOM"; b="vb$i$RANDOM"; a=${a:0:14}; b=${b:0:14}
    ip link add "$a" type veth peer name "$b"
    ip link set "$a" netns "$GW"; ip link set "$b" netns "$ns"
    ip -n "$GW" link set "$a" master bragg up
    ip -n "$ns" addr add "10.96.0.$((10 + i))/24" dev "$b"
    ip -n "$ns" link set "$b" up
    bg "$GW" "iperf3-$i" iperf3 -s -p $((5300 + i))
  done
  sleep 0.5
}

# aggregate NAME TARGET GATEWAY-PID [PID...]: one iperf3 flow from every client namespace to
# TARGET at once, each way; appends lines like measure's (Mbit/s summed over the flows).
aggregate() {
  local name=$1 target=$2; shift 2
  local dir args i hz c0 c1 g0 g1 total pids
  hz=$(getconf CLK_TCK)
  for dir in up down; do
    args=(); [ "$dir" = down ] && args=(-R)
    c0=$(cpu "$@"); g0=$(cpu "$1")
    pids=()
    for i in "${!AGG_NS[@]}"; do
      ip netns exec "${AGG_NS[$i]}" iperf3 -c "$target" -p $((5300 + i)) -t "$SECONDS_PER_RUN" -O 1 -J \
        "${args[@]}" >"$WORK/agg-$i.json" 2>/dev/null &
      pids+=($!)
    done
    wait "${pids[@]}" 2>/dev/null || true
    c1=$(cpu "$@"); g1=$(cpu "$1")
    total=$(python3 -c '
import json, sys
t = 0
for f in sys.argv[1:]:
    try:
        t += int(json.load(open(f))["end"]["sum_received"]["bits_per_second"])
    except Exception:
        pass
print(t)' "$WORK"/agg-*.json)
    echo "$name $dir $((total / 1000000)) $(((c1 - c0) * 100 / hz / (SECONDS_PER_RUN + 1)))" \
      "$(per_gbit $((g1 - g0)) "$total")" >>"$WORK/results"
    log "$name $dir: $((total / 1000000)) Mbit/s over ${#AGG_NS[@]} sessions"
  done
}

# boringtun_many: the gateway's boringtun (one thread per core) with a peer per client
# namespace, each client's boringtun with one thread; tunnel addresses 10.102.0.0/24.
boringtun_many() {
  local i k ns pub gwkey
  gwkey=$(wg genkey)
  bg "$GW" bt-gwn "$BORINGTUN" wgsn --foreground --disable-drop-privileges --threads "$(nproc)"
  BT_GW=$BG_PID; BT_CLS=()
  for i in "${!AGG_NS[@]}"; do
    ns=${AGG_NS[$i]}
    bg "$ns" "bt-c$i" "$BORINGTUN" "wgc$i" --foreground --disable-drop-privileges --threads 1
    BT_CLS+=("$BG_PID")
  done
  for _ in $(seq 50); do ip -n "$GW" link show wgsn >/dev/null 2>&1 && break; sleep 0.1; done
  ip netns exec "$GW" wg set wgsn private-key <(echo "$gwkey") listen-port 51821
  for i in "${!AGG_NS[@]}"; do
    ns=${AGG_NS[$i]}; k=$(wg genkey); pub=$(echo "$k" | wg pubkey)
    for _ in $(seq 50); do ip -n "$ns" link show "wgc$i" >/dev/null 2>&1 && break; sleep 0.1; done
    ip netns exec "$GW" wg set wgsn peer "$pub" allowed-ips "10.102.0.$((10 + i))/32"
    ip netns exec "$ns" wg set "wgc$i" private-key <(echo "$k") \
      peer "$(echo "$gwkey" | wg pubkey)" allowed-ips 10.102.0.1/32 endpoint 10.96.0.1:51821
    ip -n "$ns" addr add "10.102.0.$((10 + i))/24" dev "wgc$i"; ip -n "$ns" link set "wgc$i" mtu 1400 up
  done
  ip -n "$GW" addr add 10.102.0.1/24 dev wgsn; ip -n "$GW" link set wgsn mtu 1400 up
  for i in "${!AGG_NS[@]}"; do ip netns exec "${AGG_NS[$i]}" ping -c 1 -W 2 10.102.0.1 >/dev/null || true; done
}

# sessions NAME CLIENT-ARGS...: a fresh gateway and one client session in every client
# namespace.
sessions() {
  local name=$1; shift
  local i up=0 pids=()
  RUST_LOG=warn bg "$GW" "gw-$name" "$SLUICE_BIN" --manifests "$M" --metrics-listen 10.97.0.1:9810 \
    --tun-offload="$TUN_OFFLOAD" $GATEWAY_ARGS
  local gw=$BG_PID
  for _ in $(seq 100); do http "$GW" http://10.97.0.1:9810/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  for i in "${!AGG_NS[@]}"; do
    bg "${AGG_NS[$i]}" "cl-$name-$i" "$CLIENT_BIN" --server 10.96.0.1 --user bench --password bench-password \
      --tun slc0 --tun-offload="$TUN_OFFLOAD" $CLIENT_ARGS "$@"
    pids+=("$BG_PID")
  done
  for i in "${!AGG_NS[@]}"; do wait_for "$WORK/cl-$name-$i.log" "^UP " 30 && up=$((up + 1)); done
  if [ "$up" -eq "${#AGG_NS[@]}" ]; then
    aggregate "$name" 10.200.0.1 "$gw" "${pids[@]}"
  else
    log "$name: $up of ${#AGG_NS[@]} sessions up"
    echo "$name up 0 0 -" >>"$WORK/results"
  fi
  kill "${pids[@]}" "$gw" 2>/dev/null || true
  wait "${pids[@]}" "$gw" 2>/dev/null || true
}

: >"$WORK/results"; : >"$WORK/latency"; : >"$WORK/udp"
for t in $TYPES; do
  case $t in
    veth) TUNS= measure veth 10.97.0.1 "$(pgrep -f -n 'iperf3 -s' || echo 0)" ;;
    boringtun)
      if [ -x "$BORINGTUN" ] && command -v wg >/dev/null; then
        TUNS="wgc0 wgs0"
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
    boringtun-x*)
      if [ -x "$BORINGTUN" ] && command -v wg >/dev/null; then
        agg_net && boringtun_many && aggregate "boringtun-x$PARALLEL" 10.102.0.1 "$BT_GW" "${BT_CLS[@]}"
        kill "$BT_GW" "${BT_CLS[@]}" 2>/dev/null || true
      else
        echo "SKIPPED: boringtun (cargo install boringtun-cli; apt-get install wireguard-tools)" >&2
      fi ;;
    pptp-x*) agg_net && sessions "pptp-x$PARALLEL" ;;
    ipsec-gcm-x*) agg_net && sessions "ipsec-gcm-x$PARALLEL" --protocol l2tp --ipsec-psk bench-pre-shared-key --esp-proposal aes128gcm16 ;;
    *) echo "unknown type $t" >&2; exit 2 ;;
  esac
done

echo "## iperf3 TCP, one session, mean of $RUNS × ${SECONDS_PER_RUN} s; TUN offload $TUN_OFFLOAD; $(nproc) cores, $(uname -r)"
python3 - "$WORK/results" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
base = {(r[0].partition("-x")[2], r[1]): int(r[2]) for r in rows if r[0].partition("-x")[0] == "boringtun"}
print(f"{'path':<16}{'dir':<6}{'Mbit/s':>9}{'× boringtun':>13}{'CPU % (both ends)':>19}{'gateway CPU s/Gbit':>20}")
for n, d, m, c, g in rows:
    b = base.get((n.partition("-x")[2], d))
    ratio = f"{int(m) / b:.2f}" if b else "-"
    cpu, gw = ("-", "-") if n == "veth" else (c, g)
    print(f"{n:<16}{d:<6}{m:>9}{ratio:>13}{cpu:>19}{gw:>20}")
PY
echo
echo "## ping RTT through the path (ms): idle, under an iperf3 upload and under a download${CC:+ (congestion control $CC)};"
echo "## under the upload, p50 of the request's way TUN to TUN, split at the gateway's veth (client side,"
echo "## gateway side), and the reply's; under the download, the reply's way TUN to TUN split at the veth"
echo "## (dn gw: the gateway's TUN ring and tunnel end; dn cl: the client's side) (tcpdump); the upload's"
echo "## sender halfway: congestion window, smoothed RTT and min RTT (ss, ms)"
python3 - "$WORK/latency" <<'PY'
import sys
cols = [("p50 idle", 9), ("p99 idle", 9), ("p50 up", 8), ("p99 up", 8), ("p50 down", 9),
        ("p99 down", 9), ("request", 8), ("client", 7), ("gateway", 8), ("reply", 6),
        ("dn reply", 9), ("dn gw", 6), ("dn cl", 6), ("cwnd KiB", 9), ("srtt", 7), ("min RTT", 8)]
print(f"{'path':<16}" + "".join(f"{c:>{w + 1}}" for c, w in cols))
for l in open(sys.argv[1]):
    n, *v = l.split()
    print(f"{n:<16}" + "".join(f"{x:>{w + 1}}" for x, (_, w) in zip(v, cols)))
PY
echo
echo "## iperf3 UDP client → gateway, sender unlimited, mean of one ${SECONDS_PER_RUN} s run"
python3 - "$WORK/udp" <<'PY'
import sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
base = {r[1]: int(r[3]) for r in rows if r[0] == "boringtun"}
print(f"{'path':<16}{'IP size':>8}{'sent pps':>11}{'delivered pps':>15}{'delivered %':>13}{'× boringtun':>13}")
for n, size, sent, got, share in rows:
    ratio = f"{int(got) / base[size]:.2f}" if base.get(size) else "-"
    print(f"{n:<16}{size:>8}{sent:>11}{got:>15}{share:>13}{ratio:>13}")
PY
