# Shared helpers of the qemu interoperability lab. Source, don't run.
#
# Topology of one lab (all inside namespaces created here, torn down by lab_teardown):
#
#   guest 1 (qemu TCG) --tap--+                     [gw ns]                    [lan ns]
#   guest 2 (qemu TCG) --tap--+-- br0 10.99.0.1/24  sluice-dataplane  --veth-- 192.168.77.2/24
#   guest N: 10.99.0.(10+N)      pool 10.200.0.0/24 via TUN sluice0   192.168.77.1/24
#
# With lab_nat_up (scenario header "# lab-nat: yes") the guests sit behind a NAT instead:
#
#   guest N (qemu TCG) --tap-- br0 10.98.0.1/24 [nat ns] wan0 10.99.0.2/24 --veth-- br0 [gw ns]
#   guest N: 10.98.0.(10+N), default route via 10.98.0.1; nftables masquerades all that
#   leaves wan0, so every guest reaches the gateway from 10.99.0.2 (ports remapped).
#
# Nothing is routed out of the namespaces: qemu runs inside the gw (or nat) namespace
# and its only network device is a tap there; the nat namespace has no default route.
set -euo pipefail

LAB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$LAB_DIR/../.." && pwd)
SLUICE_BIN=${SLUICE_BIN:-$REPO_DIR/target/release/sluice-dataplane}
QEMU=${QEMU:-qemu-system-x86_64}
GUEST_MEM=${GUEST_MEM:-512}
GUEST_CPUS=${GUEST_CPUS:-1}
QEMU_CPU=${QEMU_CPU:-}       # e.g. "max": TCG then emulates AES-NI and friends (benchmarks)
LAB_TAG="slq$$"
LAB_WORK=${LAB_WORK:-$(mktemp -d /tmp/sluice-qemu.XXXXXX)}
EP=127.0.0.1:9810            # the gateway's metrics endpoint, inside the gw namespace
# The gateway writes its admin token here; `sluice-dataplane sessions` reads it.
export SLUICE_ADMIN_TOKEN_FILE="$LAB_WORK/admin-token"
GW_ADDR=10.99.0.1            # the gateway's address on the guests' segment
LAN_HOST=192.168.77.2        # "a host on the gateway side"
NAT_NET=10.98.0              # the guests' segment behind the NAT (lab_nat_up), /24
NAT_ADDR=10.99.0.2           # the NAT's outside address on the gateway's segment
# Where guest_boot puts guests: lab_up points these at the gw namespace (10.99.0.0/24,
# router = the gateway), lab_nat_up moves them behind the NAT.
GUEST_NS=""; GUEST_NET=10.99.0; GUEST_ROUTER=$GW_ADDR
LAB_NSES=()
LAB_PIDS=()

log() { printf '\033[1m[qemu-lab]\033[0m %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# lab_image: build (or reuse) the guest image; sets IMAGE. Fails loudly.
lab_image() {
  command -v "$QEMU" >/dev/null || die "$QEMU not found: apt-get install -y qemu-system-x86"
  IMAGE=$("$LAB_DIR/build-image.sh") || die "the guest image could not be built"
  [ -f "$IMAGE/root.ext4" ] && [ -f "$IMAGE/vmlinuz" ] && [ -f "$IMAGE/initrd.img" ] || die "incomplete image in $IMAGE"
}

# lab_up DIR: namespaces, bridge, LAN host. SW (scenario work dir) = DIR.
lab_up() {
  SW=$1; mkdir -p "$SW"
  GW_NS="$LAB_TAG-gw"; LAN_NS="$LAB_TAG-lan"
  ip netns add "$GW_NS"; LAB_NSES+=("$GW_NS")
  ip netns add "$LAN_NS"; LAB_NSES+=("$LAN_NS")
  ip -n "$GW_NS" link set lo up; ip -n "$LAN_NS" link set lo up
  ip -n "$GW_NS" link add br0 type bridge
  ip -n "$GW_NS" addr add "$GW_ADDR/24" dev br0
  ip -n "$GW_NS" link set br0 up
  ip link add "${LAB_TAG}g" type veth peer name "${LAB_TAG}l"
  ip link set "${LAB_TAG}g" netns "$GW_NS"; ip link set "${LAB_TAG}l" netns "$LAN_NS"
  ip -n "$GW_NS" link set "${LAB_TAG}g" name lan0; ip -n "$LAN_NS" link set "${LAB_TAG}l" name gw0
  ip -n "$GW_NS" addr add 192.168.77.1/24 dev lan0; ip -n "$GW_NS" link set lan0 up
  ip -n "$LAN_NS" addr add "$LAN_HOST/24" dev gw0; ip -n "$LAN_NS" link set gw0 up
  ip -n "$LAN_NS" route add 10.200.0.0/16 via 192.168.77.1
  GUEST_NS=$GW_NS; GUEST_NET=10.99.0; GUEST_ROUTER=$GW_ADDR; NAT_NS=""
}

# lab_nat_up: after lab_up, a NAT namespace between the guests and the gateway's segment
# (see the topology above); guest_boot then puts guests on its bridge. Sets NAT_NS.
lab_nat_up() {
  command -v nft >/dev/null || die "nft not found: apt-get install -y nftables"
  NAT_NS="$LAB_TAG-nat"
  ip netns add "$NAT_NS"; LAB_NSES+=("$NAT_NS")
  ip -n "$NAT_NS" link set lo up
  ip -n "$NAT_NS" link add br0 type bridge
  ip -n "$NAT_NS" addr add "$NAT_NET.1/24" dev br0
  ip -n "$NAT_NS" link set br0 up
  ip link add "${LAB_TAG}n" type veth peer name "${LAB_TAG}w"
  ip link set "${LAB_TAG}n" netns "$NAT_NS"; ip link set "${LAB_TAG}w" netns "$GW_NS"
  ip -n "$NAT_NS" link set "${LAB_TAG}n" name wan0; ip -n "$GW_NS" link set "${LAB_TAG}w" name nat0
  ip -n "$GW_NS" link set nat0 master br0; ip -n "$GW_NS" link set nat0 up
  ip -n "$NAT_NS" addr add "$NAT_ADDR/24" dev wan0; ip -n "$NAT_NS" link set wan0 up
  ip netns exec "$NAT_NS" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$NAT_NS" nft -f - <<NFT
table ip nat {
  chain post { type nat hook postrouting priority 100; oifname "wan0" ip saddr $NAT_NET.0/24 masquerade; }
}
NFT
  GUEST_NS=$NAT_NS; GUEST_NET=$NAT_NET; GUEST_ROUTER=$NAT_NET.1
}

# lab_bg NS NAME CMD...: background process in a namespace, output in $SW/NAME.log; sets BG_PID.
lab_bg() {
  local ns=$1 name=$2; shift 2
  ip netns exec "$ns" "$@" >"$SW/$name.log" 2>&1 &
  BG_PID=$!; LAB_PIDS+=("$BG_PID")
}

# gateway_start MANIFEST: copy the manifest to $SW/manifest.yaml (MANIFEST, which host
# hooks may rewrite) and run sluice-dataplane in the gw namespace; sets GATEWAY_PID.
gateway_start() {
  [ -x "$SLUICE_BIN" ] || die "gateway binary $SLUICE_BIN missing: cargo build --release -p sluice-dataplane"
  MANIFEST="$SW/manifest.yaml"
  cp "$1" "$MANIFEST"
  lab_bg "$GW_NS" gateway "$SLUICE_BIN" --manifests "$MANIFEST" --metrics-listen "$EP" --watch-interval 1
  GATEWAY_PID=$BG_PID
  wait_for "$SW/gateway.log" "gateway ready" 20 || { log "gateway did not start"; return 1; }
}

# gateway_reload FILE: atomically replace the manifest, SIGHUP, wait for the outcome.
gateway_reload() {
  local n; n=$(grep -cE "configuration (applied|rejected)" "$SW/gateway.log" || true)
  cp "$1" "$MANIFEST.new"; mv "$MANIFEST.new" "$MANIFEST"
  kill -HUP "$GATEWAY_PID"
  for _ in $(seq 100); do
    [ "$(grep -cE "configuration (applied|rejected)" "$SW/gateway.log" || true)" -gt "$n" ] && return 0
    sleep 0.1
  done
  log "gateway did not report a reload"; return 1
}

# guest_boot NAME INDEX TAR TIMEOUT: boot guest INDEX (address 10.99.0.(10+INDEX), or
# 10.98.0.(10+INDEX) behind the NAT after lab_nat_up) with the scenario archive TAR on
# /dev/vdb; serial console in $SW/NAME.serial.log; sets GUEST_PID. The kernel command line
# tells the guest its name, index and the gateway's address (sluice.name, sluice.index,
# sluice.server; guest/lib.sh reads them).
guest_boot() {
  local name=$1 idx=$2 tar=$3 timeout=$4 tap="tap$2"
  local ns=${GUEST_NS:-$GW_NS}
  ip -n "$ns" tuntap add dev "$tap" mode tap
  ip -n "$ns" link set "$tap" master br0
  ip -n "$ns" link set "$tap" up
  ip netns exec "$ns" timeout -k 5 "$((timeout + 90))" "$QEMU" -accel tcg ${QEMU_CPU:+-cpu "$QEMU_CPU"} -nodefaults -no-user-config \
    -machine pc -m "$GUEST_MEM" -smp "$GUEST_CPUS" -display none -monitor none -no-reboot -snapshot \
    -kernel "$IMAGE/vmlinuz" -initrd "$IMAGE/initrd.img" \
    -append "root=/dev/vda rw console=ttyS0 net.ifnames=0 quiet loglevel=3 panic=-1 init=/sbin/sluice-init sluice.name=$name sluice.index=$idx sluice.ip=$GUEST_NET.$((10 + idx))/24 sluice.gw=$GUEST_ROUTER sluice.server=$GW_ADDR sluice.timeout=$timeout" \
    -drive "file=$IMAGE/root.ext4,format=raw,if=virtio" \
    -drive "file=$tar,format=raw,if=virtio,readonly=on" \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device "virtio-net-pci,netdev=n0,romfile=,mac=52:54:00:5e:00:$(printf %02x "$idx")" \
    -serial "file:$SW/$name.serial.log" -pidfile "$SW/$name.pid" >"$SW/$name.qemu.log" 2>&1 &
  GUEST_PID=$!; LAB_PIDS+=("$GUEST_PID")
}

# lab_guest_names N: set GUESTS to the names of N guests: "guest" for one (as always),
# guest1 .. guestN for more.
lab_guest_names() {
  GUESTS=()
  if [ "$1" -eq 1 ]; then GUESTS=(guest); else
    local i; for i in $(seq "$1"); do GUESTS+=("guest$i"); done
  fi
}

# guest_kill NAME: SIGKILL the guest's qemu (pulling the plug: no LCP/PPTP goodbye).
guest_kill() { kill -9 "$(cat "$SW/$1.pid")"; }

# guest_tar OUT DIR...: a scenario archive with the guest library and the files of DIRs.
guest_tar() {
  local out=$1 stage; shift
  stage=$(mktemp -d "$SW/stage.XXXX")
  cp "$LAB_DIR/guest/lib.sh" "$stage/lib.sh"
  # -L: scenarios may link shared fixtures (the test certificates of sluice-ike).
  for d in "$@"; do cp -rL "$d"/. "$stage/"; done
  tar -C "$stage" -cf "$out" .
  rm -rf "$stage"
}

# guest_verdict NAME: PASS, FAIL or NONE from the serial log.
guest_verdict() {
  local v; v=$(sed -n 's/^SLUICE-VERDICT: \([A-Z]*\).*/\1/p' "$SW/$1.serial.log" 2>/dev/null | tail -n 1 | tr -d '\r')
  echo "${v:-NONE}"
}

# wait_for FILE PATTERN [SECONDS]: see ../common.sh.
source "$(dirname "${BASH_SOURCE[0]}")/../common.sh"

# wait_mark NAME MARK [SECONDS]: wait for "SLUICE-MARK: MARK" from guest NAME (or its verdict).
wait_mark() {
  wait_for "$SW/$1.serial.log" "^SLUICE-(MARK: $2|VERDICT)" "${3:-120}" || return 1
  grep -qE "^SLUICE-MARK: $2" "$SW/$1.serial.log" || { log "guest $1 finished without mark $2"; return 1; }
}

# wait_marks MARK [SECONDS]: wait_mark MARK for every guest in GUESTS (all must reach it).
wait_marks() {
  local g ok=0
  for g in "${GUESTS[@]}"; do wait_mark "$g" "$@" || ok=1; done
  return "$ok"
}

# Gateway introspection (run inside the gw namespace).
gw_sessions() { ip netns exec "$GW_NS" "$SLUICE_BIN" sessions "$@"; }
gw_metrics() {
  ip netns exec "$GW_NS" python3 -c 'import sys,urllib.request;sys.stdout.write(urllib.request.urlopen(sys.argv[1],timeout=5).read().decode())' "http://$EP/metrics"
}
# metric NAME_AND_LABELS: the value of one sample (0 when absent), integer part.
metric() { gw_metrics | awk -v m="$1" 'index($0, m" ") == 1 { v = $2 } END { v = (v == "" ? 0 : v); sub(/\..*/, "", v); print v }'; }
# metric_sum NAME LABEL: the sum of NAME's samples whose labels contain LABEL (integer).
metric_sum() { gw_metrics | awk -v m="$1{" -v l="$2" 'index($0, m) == 1 && index($0, l) > 0 { s += $NF } END { printf "%d\n", s }'; }
# sessions_json_py EXPR: evaluate a python expression over s = the session list (JSON).
sessions_py() { gw_sessions --json | python3 -c "import json,sys; s=json.load(sys.stdin); print($1)"; }

# hcheck NAME CMD...: a host-side assertion inside a host hook; failures are counted
# in $SW/host.failed and make the scenario fail.
hcheck() {
  local name=$1; shift
  if "$@" >"$SW/hcheck.out" 2>&1; then log "host ok   - $name"
  else echo "$name" >>"$SW/host.failed"; log "host FAIL - $name"; sed 's/^/    /' "$SW/hcheck.out" >&2; fi
}

lab_teardown() {
  local p ns
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  sleep 0.3
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && kill -9 "$p" 2>/dev/null || true; done
  for p in "${LAB_PIDS[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null || true; done
  for ns in "${LAB_NSES[@]:-}"; do [ -n "$ns" ] && ip netns del "$ns" 2>/dev/null || true; done
  LAB_PIDS=(); LAB_NSES=()
}
