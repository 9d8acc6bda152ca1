#!/usr/bin/env bash
# Host CPU cost of L2TP/IPsec (not part of the test command): CPU time per Mbit/s of the
# server process on the host, sluice-dataplane vs SoftEther VPN Server (a user-space
# L2TP/IPsec server), with the same stock client guest (bench/ipsec-client: strongSwan
# IKEv1 PSK aes128-sha1-modp2048, ESP AES-128-CBC + HMAC-SHA1-96 transport, kernel XFRM,
# + xl2tpd + pppd) in one run. Each server runs in the lab's gw namespace (lab_up) the
# way the lab runs sluice; the client guest runs iperf3 TCP for BENCH_SECONDS (default
# 15) to the LAN host 192.168.77.2 (iperf3 -s in the LAN namespace).
#
# Measured: utime+stime of the server's process tree (all threads; every descendant;
# cutime+cstime of reaped children), from /proc/PID/stat, sampled when the iperf3 data
# connection to the LAN host is established and again when it closes (polled every 20 ms
# in the LAN namespace), divided by that interval: "% of a core"; divided again by the
# Mbit/s iperf3's receiver reported: "% of a core per Mbit/s". Also printed: the idle
# cost before the client boots, and the rate seen on the LAN host's veth.
#
# SoftEther: SOFTETHER_SRC=/path/to/SoftEtherVPN_Stable (a source tree, e.g. exported
# from a fetched snapshot; never committed) is built once into
# ${SOFTETHER_BUILD:-/tmp/softether-build}-<hash> with ./configure && make (apt-get
# installs the build dependencies if missing) and configured with vpncmd: hub LAB, user
# alice (password), L2TP over IPsec with the PSK, SecureNAT with only its virtual DHCP
# server on (NAT off; pool 10.200.0.10-200, router 10.200.0.1), and a local bridge of the
# hub to a veth whose peer carries 10.200.0.1/24 in the gw namespace, which routes to the
# LAN: the client's traffic is bridged at L2 and routed by the gw namespace's kernel, not
# user-mode NATed. DDNS, NAT traversal, VPN Azure and keep-alive are switched off (the
# namespace has no route out anyway). Without SOFTETHER_SRC only sluice is measured;
# BENCH_SERVERS="sluice softether" (the default) selects the phases; BENCH_KEEP=1 keeps
# the logs (in LAB_WORK).
#
#   sudo SOFTETHER_SRC=/tmp/softether-src e2e/qemu/bench-softether.sh
#
# Needs root, python3 and iperf3 on the host; guests run under qemu TCG.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
[ "$(id -u)" -eq 0 ] || die "needs root"
command -v iperf3 >/dev/null || die "iperf3 missing on the host: apt-get install -y iperf3"
BENCH_SECONDS=${BENCH_SECONDS:-15}
SOFTETHER_SRC=${SOFTETHER_SRC:-}
BENCH_SERVERS=${BENCH_SERVERS:-sluice softether}
SE_PIDS=()

# SoftEther's "vpnserver execsvc" forks the server proper and waits for it: stop the
# children (SIGTERM makes the server save its configuration and exit) before the lab.
se_stop() {
  local p c
  for p in "${SE_PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for c in $(pgrep -P "$p" 2>/dev/null); do kill "$c" 2>/dev/null || true; done
  done
  for p in "${SE_PIDS[@]:-}"; do
    [ -n "$p" ] || continue
    for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    for c in $(pgrep -P "$p" 2>/dev/null); do kill -9 "$c" 2>/dev/null || true; done
    kill -9 "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  SE_PIDS=()
}
cleanup() { se_stop; lab_teardown; }
trap cleanup EXIT

# The sampler: `sample PID PORT TIMEOUT` (run in the LAN namespace) waits for the iperf3
# data connection on local PORT, prints JSON {cpu_s, wall_s, rx_bytes, procs};
# `idle PID SECONDS` prints the CPU seconds PID's tree used in SECONDS.
SAMPLER=$LAB_WORK/cpu-sampler.py
mkdir -p "$LAB_WORK"
cat >"$SAMPLER" <<'PY'
import json, os, sys, time
HZ = os.sysconf("SC_CLK_TCK")

def stat(p):
    with open(f"/proc/{p}/stat") as f:
        s = f.read()
    r = s[s.rindex(")") + 2:].split()        # r[0] = field 3 (state)
    return int(r[1]), int(r[11]) + int(r[12]), int(r[13]) + int(r[14])   # ppid, utime+stime, cutime+cstime

def tree_cpu(root):
    procs = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                procs[int(d)] = stat(d)
            except (OSError, ValueError, IndexError):
                pass
    members, grew = {root}, True
    while grew:
        grew = False
        for p, (pp, _, _) in procs.items():
            if pp in members and p not in members:
                members.add(p); grew = True
    ticks = sum(procs[p][1] for p in members if p in procs) + (procs[root][2] if root in procs else 0)
    return ticks / HZ, sorted(members)

def established(port):
    n = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    c = line.split()
                    if c[3] == "01" and int(c[1].rsplit(":", 1)[1], 16) == port:
                        n += 1
        except OSError:
            pass
    return n

def rx_bytes(dev="gw0"):
    with open("/proc/net/dev") as f:
        for line in f:
            if line.strip().startswith(dev + ":"):
                return int(line.split(":", 1)[1].split()[0])
    return 0

if sys.argv[1] == "idle":
    pid, secs = int(sys.argv[2]), float(sys.argv[3])
    c0, _ = tree_cpu(pid); time.sleep(secs); c1, _ = tree_cpu(pid)
    print(json.dumps({"cpu_s": c1 - c0, "wall_s": secs}))
    sys.exit(0)

pid, port, timeout = int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
deadline = time.monotonic() + timeout
start = None
while time.monotonic() < deadline:
    n = established(port)
    if start is None and n >= 2:              # control + data connection: the test runs
        start = (time.monotonic(), tree_cpu(pid)[0], rx_bytes())
    elif start is not None and n < 2:         # the data connection closed
        t1, (c1, members), b1 = time.monotonic(), tree_cpu(pid), rx_bytes()
        print(json.dumps({"cpu_s": c1 - start[1], "wall_s": t1 - start[0],
                          "rx_bytes": b1 - start[2], "procs": members}))
        sys.exit(0)
    time.sleep(0.02)
print(json.dumps({"error": "no iperf3 test seen" if start is None else "test did not end"}))
sys.exit(1)
PY

load() { cut -d' ' -f1-3 /proc/loadavg; }

# softether_build: build SOFTETHER_SRC once (cached by the tree's file list, sizes and
# mtimes); sets SE_BIN (the directory holding vpnserver, vpncmd and hamcore.se2).
softether_build() {
  local src=$SOFTETHER_SRC key build missing=() p
  [ -f "$src/configure" ] && [ -f "$src/src/makefiles/linux_64bit.mak" ] && [ -d "$src/src/Cedar" ] \
    || die "SOFTETHER_SRC=$src is not a SoftEther VPN Stable source tree (./configure, src/makefiles)"
  key=$(cd "$src" && find . -type f -printf '%P %s %T@\n' | sort | sha256sum | cut -c1-16)
  build=${SOFTETHER_BUILD:-/tmp/softether-build}-$key
  if [ ! -x "$build/bin/vpnserver/vpnserver" ] || [ ! -x "$build/bin/vpncmd/vpncmd" ]; then
    for p in gcc make libc6-dev libssl-dev libreadline-dev libncurses-dev zlib1g-dev; do
      dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
      log "apt-get install ${missing[*]} (SoftEther build dependencies)"
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || die "cannot install ${missing[*]}"
    fi
    log "building SoftEther VPN from $src into $build (./configure && make)"
    rm -rf "$build.tmp"; cp -a "$src" "$build.tmp"
    (cd "$build.tmp" && ./configure </dev/null && make -j"$(nproc)") >"$build.log" 2>&1 \
      || { tail -n 30 "$build.log" >&2; die "SoftEther build failed (log in $build.log)"; }
    rm -rf "$build"; mv "$build.tmp" "$build"
  fi
  SE_BIN=$build/bin
}

# Server starters: each runs its server in $GW_NS and sets SERVER_PID (the process whose
# tree is measured).
start_sluice() {
  gateway_start "$here/bench/ipsec-server-sluice/manifest.yaml" || die "sluice-dataplane did not start"
  SERVER_PID=$GATEWAY_PID
}

se_cmd() {  # vpncmd against the server in the gw namespace; output in $SW/vpncmd.log
  ip netns exec "$GW_NS" "$SE_DIR/vpncmd" 127.0.0.1:5555 /SERVER "$@" >>"$SW/vpncmd.log" 2>&1
}

se_launch() {  # run vpnserver execsvc from its directory (it keeps its config there)
  pushd "$SE_DIR" >/dev/null
  lab_bg "$GW_NS" softether "$SE_DIR/vpnserver" execsvc
  popd >/dev/null
  SE_PIDS+=("$BG_PID"); SERVER_PID=$BG_PID
  for _ in $(seq 100); do se_cmd /CMD About && return 0; sleep 0.3; done
  cat "$SW/softether.log" "$SW/vpncmd.log" >&2; die "SoftEther VPN Server did not answer vpncmd"
}

start_softether() {
  SE_DIR=$SW/softether
  mkdir -p "$SE_DIR"
  cp "$SE_BIN/vpnserver/vpnserver" "$SE_BIN/vpnserver/hamcore.se2" "$SE_BIN/vpncmd/vpncmd" "$SE_DIR/"
  # The hub's bridge port (se-br, no address) and the gw namespace's leg on the client
  # subnet (se-gw, 10.200.0.1/24, the DHCP router); GSO off so that the packet socket
  # SoftEther bridges with only sees Ethernet-sized frames.
  ip -n "$GW_NS" link add se-br type veth peer name se-gw
  ip -n "$GW_NS" link set se-br gso_max_segs 1
  ip -n "$GW_NS" link set se-gw gso_max_segs 1
  ip -n "$GW_NS" addr add 10.200.0.1/24 dev se-gw
  ip -n "$GW_NS" link set se-br up; ip -n "$GW_NS" link set se-gw up
  se_launch
  cat >"$SE_DIR/setup.vpncmd" <<'CMDS'
HubCreate LAB /PASSWORD:lab-hub-admin
Hub LAB
UserCreate alice /GROUP:none /REALNAME:none /NOTE:none
UserPasswordSet alice /PASSWORD:alice-secret
SecureNatEnable
NatDisable
SecureNatHostSet /MAC:none /IP:10.200.0.2 /MASK:255.255.255.0
DhcpSet /START:10.200.0.10 /END:10.200.0.200 /MASK:255.255.255.0 /EXPIRE:7200 /GW:10.200.0.1 /DNS:none /DNS2:none /DOMAIN:none /LOG:no
BridgeCreate LAB /DEVICE:se-br /TAP:no
IPsecEnable /L2TP:yes /L2TPRAW:no /ETHERIP:no /PSK:correct-horse-battery /DEFAULTHUB:LAB
KeepDisable
VpnAzureSetEnable no
CMDS
  se_cmd /IN:"$SE_DIR/setup.vpncmd" || { cat "$SW/vpncmd.log" >&2; die "vpncmd configuration failed"; }
  # Switch off the DDNS client and NAT traversal in the saved configuration, restart.
  se_stop
  python3 - "$SE_DIR/vpn_server.config" <<'PY' || die "cannot edit the SoftEther configuration"
import re, sys
p = sys.argv[1]; s = open(p, encoding="utf-8-sig").read()
s, n1 = re.subn(r"(declare DDnsClient\s*\{\s*bool Disabled )false", r"\1true", s)
s, n2 = re.subn(r"bool DisableNatTraversal false", "bool DisableNatTraversal true", s)
assert "declare DDnsClient" in s and "DisableNatTraversal true" in s, (n1, n2)
open(p, "w", encoding="utf-8").write(s)
PY
  se_launch
  for _ in $(seq 50); do
    se_cmd /CMD BridgeList && grep -q "se-br *|Operating" "$SW/vpncmd.log" && break; sleep 0.2
  done
  grep -q "se-br *|Operating" "$SW/vpncmd.log" || { cat "$SW/vpncmd.log" >&2; die "SoftEther local bridge not operating"; }
  ip netns exec "$GW_NS" ping -c 3 -i 0.5 -W 3 10.200.0.2 >/dev/null || die "SecureNAT's virtual host not reachable over the bridge"
  # IKE and NAT-T; L2TP arrives inside ESP (SoftEther binds udp/1701 only for raw L2TP).
  # Its UDP listener binds the ports asynchronously.
  for _ in $(seq 100); do
    ip netns exec "$GW_NS" ss -lunp >"$SW/udp-listeners.txt"
    grep -q ":500 .*vpnserver" "$SW/udp-listeners.txt" && grep -q ":4500 .*vpnserver" "$SW/udp-listeners.txt" && break
    sleep 0.2
  done
  grep -q ":500 .*vpnserver" "$SW/udp-listeners.txt" && grep -q ":4500 .*vpnserver" "$SW/udp-listeners.txt" \
    || { cat "$SW/udp-listeners.txt" >&2; die "SoftEther is not listening on udp/500 and udp/4500"; }
}

phase() {  # NAME START_FN; sets CPU_PCT PER_MBIT RATE VETH_RATE IDLE_PCT LOAD
  local name=$1 start=$2 rate j
  lab_up "$LAB_WORK/$name"
  ip netns exec "$GW_NS" sysctl -qw net.ipv4.ip_forward=1
  local busy
  busy=$(ip netns exec "$GW_NS" ss -lunH | awk '{print $4}' | grep -E ':(500|4500|1701)$' || true)
  [ -z "$busy" ] || die "$name: udp ports already bound in the gw namespace: $busy"
  "$start"
  log "$name: server pid $SERVER_PID; idle cost over 5 s"
  j=$(python3 "$SAMPLER" idle "$SERVER_PID" 5)
  IDLE_PCT=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(f'{100*d[\"cpu_s\"]/d[\"wall_s\"]:.2f}')" "$j")
  lab_bg "$LAN_NS" iperf3-server iperf3 -s -1 -f m
  ip netns exec "$LAN_NS" python3 "$SAMPLER" sample "$SERVER_PID" 5201 600 >"$SW/cpu.json" 2>"$SW/sampler.log" &
  local sampler=$!
  LAB_PIDS+=("$sampler")
  mkdir -p "$SW/client-extra"
  printf '%s\n' "BENCH_TARGET=$LAN_HOST" "BENCH_ROUTE=192.168.77.0/24" "BENCH_SECONDS=$BENCH_SECONDS" \
    >"$SW/client-extra/bench.env"
  guest_tar "$SW/client.tar" "$here/bench/ipsec-client" "$SW/client-extra"
  guest_boot client 1 "$SW/client.tar" 400
  local cpid=$GUEST_PID
  wait_mark client iperf-start 480 || true
  LOAD=$(load)
  wait "$cpid" || true
  wait "$sampler" || true
  rate=$(sed -n 's/^BENCH-RESULT: *\([0-9.]*\).*/\1/p' "$SW/client.serial.log" | tail -n 1)
  if [ -z "$rate" ] || [ "$(guest_verdict client)" != PASS ] || ! grep -q cpu_s "$SW/cpu.json"; then
    cat "$SW/client.serial.log" >&2; cat "$SW/cpu.json" "$SW/sampler.log" >&2 || true
    die "$name: no figure (logs in $SW)"
  fi
  read -r CPU_PCT PER_MBIT VETH_RATE WALL CPU_S < <(python3 -c '
import json, sys
d = json.load(open(sys.argv[1])); rate = float(sys.argv[2])
pct = 100 * d["cpu_s"] / d["wall_s"]
veth, wall, cpu = d["rx_bytes"] * 8 / d["wall_s"] / 1e6, d["wall_s"], d["cpu_s"]
print(f"{pct:.1f} {pct / rate:.3f} {veth:.1f} {wall:.2f} {cpu:.2f}")' "$SW/cpu.json" "$rate")
  RATE=$rate
  log "$name: $RATE Mbit/s, $CPU_S s CPU in $WALL s = $CPU_PCT% of a core, $PER_MBIT% per Mbit/s (load $LOAD)"
  grep -E "^\[guest\] ppp0:" "$SW/client.serial.log" | tr -d '\r' | sed "s/^/[$name] /" >&2 || true
  se_stop
  lab_teardown
}

lab_image
[ -z "$SOFTETHER_SRC" ] || softether_build
case " $BENCH_SERVERS " in *" sluice "*) ;; *) S_SKIP=1;; esac
case " $BENCH_SERVERS " in *" softether "*) [ -n "$SOFTETHER_SRC" ] || E_SKIP=1;; *) E_SKIP=1;; esac
if [ -z "${S_SKIP:-}" ]; then
  [ -x "$SLUICE_BIN" ] || die "missing $SLUICE_BIN: cargo build --release -p sluice-dataplane"
  log "phase 1: sluice-dataplane in the gw namespace"
  phase sluice start_sluice
  S_RATE=$RATE S_PCT=$CPU_PCT S_PER=$PER_MBIT S_VETH=$VETH_RATE S_IDLE=$IDLE_PCT S_LOAD=$LOAD
fi
if [ -z "${E_SKIP:-}" ]; then
  log "phase 2: SoftEther VPN Server in the gw namespace"
  phase softether start_softether
  E_RATE=$RATE E_PCT=$CPU_PCT E_PER=$PER_MBIT E_VETH=$VETH_RATE E_IDLE=$IDLE_PCT E_LOAD=$LOAD
fi

row() {  # LABEL RATE VETH PCT PER IDLE LOAD
  printf '  %-22s %7s Mbit/s (veth %6s)  %5s%% of a core  %6s%% of a core per Mbit/s  idle %5s%%  load %s\n' "$@"
}
echo "host CPU of the L2TP/IPsec server process (utime+stime, all threads), iperf3 TCP ${BENCH_SECONDS} s from a qemu TCG"
echo "client guest (strongSwan IKEv1 PSK, ESP AES-128-CBC/HMAC-SHA1 transport, xl2tpd, pppd) to the LAN host, $(nproc) host cores:"
[ -n "${S_SKIP:-}" ] || row "sluice-dataplane:" "$S_RATE" "$S_VETH" "$S_PCT" "$S_PER" "$S_IDLE" "$S_LOAD"
if [ -z "${E_SKIP:-}" ]; then
  row "SoftEther VPN Server:" "$E_RATE" "$E_VETH" "$E_PCT" "$E_PER" "$E_IDLE" "$E_LOAD"
else
  echo "  SoftEther VPN Server: not measured (SOFTETHER_SRC=<SoftEther VPN Stable source tree>)"
fi
if [ -z "${S_SKIP:-}" ] && [ -z "${E_SKIP:-}" ]; then
  python3 -c "print(f'  ratio sluice / SoftEther (CPU per Mbit/s): {$S_PER / $E_PER:.2f}   (target <= 0.5)')"
fi
if [ -n "${BENCH_KEEP:-}" ]; then log "logs kept in $LAB_WORK"; else rm -rf "$LAB_WORK"; fi
