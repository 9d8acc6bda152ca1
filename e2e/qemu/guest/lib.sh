# Guest-side helpers for scenario scripts (shipped in every scenario archive as
# /scenario/lib.sh). Scenario scripts run under bash as root in the lab guest.

# cmdline_arg NAME: a sluice.* parameter from the kernel command line (set by guest_boot).
cmdline_arg() { tr ' ' '\n' </proc/cmdline | sed -n "s/^$1=//p" | tail -n 1; }
GUEST_NAME=$(cmdline_arg sluice.name); GUEST_NAME=${GUEST_NAME:-guest}   # guest, or guest1, guest2 ...
GUEST_INDEX=$(cmdline_arg sluice.index); GUEST_INDEX=${GUEST_INDEX:-1}   # 1, 2 ... (address 10.9x.0.(10+N))
# The gateway (10.99.0.1): named on the command line; the default route's next hop is the
# gateway itself, except behind the lab's NAT (lab-nat), where it is the NAT router.
SERVER=$(cmdline_arg sluice.server)
[ -n "$SERVER" ] || SERVER=$(ip -4 route show default | awk '{print $3; exit}')
LAN_HOST=192.168.77.2                                         # a host behind the gateway
TUNNEL_GW=10.200.0.1                                          # the gateway's tunnel address
PASSED=0
FAILED=0

log() { echo "[guest] $*"; }
# mark NAME: tell host hooks (wait_mark) that the scenario reached a point.
mark() { echo "SLUICE-MARK: $1"; }

# check NAME CMD...: one assertion; output shown only on failure.
check() {
  local name=$1; shift
  if "$@" >/tmp/check.out 2>&1; then PASSED=$((PASSED + 1)); log "ok   - $name"
  else FAILED=$((FAILED + 1)); log "FAIL - $name"; sed 's/^/    /' /tmp/check.out; fi
}

# summary: last line of every guest.sh.
summary() { log "$PASSED passed, $FAILED failed"; [ "$FAILED" -eq 0 ] && [ "$PASSED" -gt 0 ]; }

# pptp_start UNIT USER PASSWORD [pppd options...]: stock pppd + pptp-linux, as the
# README tells users to, on interface pppUNIT, debug log in /tmp/pppd-UNIT.log.
# Without options the client allows only MS-CHAPv2 and requires MPPE-128 (stateless).
# Debian's /etc/ppp/options.pptp is not used because it refuses PAP, CHAP-MD5 and
# MS-CHAPv1 for good; its other settings (lock nobsdcomp nodeflate) are passed.
# (Client side, methods are restricted with refuse-*; require-* would demand that
# the *gateway* authenticates to us.)
pptp_start() {
  local unit=$1 user=$2 pw=$3; shift 3
  local opts=("$@")
  [ ${#opts[@]} -eq 0 ] && opts=(require-mppe-128 refuse-pap refuse-eap refuse-chap refuse-mschap)
  : >"/tmp/pppd-$unit.log"
  pppd pty "pptp $SERVER --nolaunchpppd --loglevel 1" \
    name "$user" password "$pw" remotename sluice usepeerdns nodefaultroute noipdefault \
    lock nobsdcomp nodeflate unit "$unit" linkname "u$unit" ipparam "u$unit" \
    nodetach debug logfile "/tmp/pppd-$unit.log" "${opts[@]}" noauth >"/tmp/pppd-$unit.stdout.log" 2>&1 &
  eval "PPPD_$unit=$!"
  # pptp-linux shares one call manager (one control connection) per server between
  # all its calls, and two pptp processes starting at once race for its socket:
  # start calls one after another, each once the gateway has answered the call.
  local i=0 pid=$!
  while [ $i -lt 200 ] && kill -0 "$pid" 2>/dev/null && ! grep -q '^rcvd \[' "/tmp/pppd-$unit.log"; do
    sleep 0.1; i=$((i + 1))
  done
}

# pptp_wait UNIT [SECONDS]: wait until pppUNIT is up with its address (0) or pppd exits (1).
pptp_wait() {
  local unit=$1 t=${2:-30} i=0 pid
  eval "pid=\$PPPD_$unit"
  while [ $i -lt $((t * 10)) ]; do
    grep -q "^Script /etc/ppp/ip-up finished" "/tmp/pppd-$unit.log" && return 0   # address set, link up
    kill -0 "$pid" 2>/dev/null || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# pptp_exit UNIT [SECONDS]: wait for pppd UNIT to exit; prints its exit status.
pptp_exit() {
  local unit=$1 t=${2:-30} i=0 pid rc
  eval "pid=\$PPPD_$unit"
  while kill -0 "$pid" 2>/dev/null && [ $i -lt $((t * 10)) ]; do sleep 0.1; i=$((i + 1)); done
  if kill -0 "$pid" 2>/dev/null; then echo running; return 1; fi
  wait "$pid"; rc=$?
  echo "$rc"
}

# pptp_stop UNIT: hang up cleanly (SIGTERM to pppd) and wait for it.
pptp_stop() {
  local pid; eval "pid=\$PPPD_$1"
  kill "$pid" 2>/dev/null; pptp_exit "$1" 10 >/dev/null || true
}

ppp_addr() { ip -4 -o addr show dev "ppp$1" 2>/dev/null | awk '{print $4; exit}' | cut -d/ -f1; }
ppp_peer() { ip -4 -o addr show dev "ppp$1" 2>/dev/null | awk '{print $6; exit}' | cut -d/ -f1; }
ppp_mtu() { cat "/sys/class/net/ppp$1/mtu"; }
in_pool() { case "$1" in 10.200.0.*) [ "$1" != 10.200.0.0 ] && [ "$1" != 10.200.0.1 ] && [ "$1" != 10.200.0.255 ];; *) false;; esac; }
# not CMD...: negate (for check).
not() { ! "$@"; }
# pptp_gone UNIT [SECONDS]: true once pppd UNIT has exited.
pptp_gone() { [ "$(pptp_exit "$@")" != running ]; }
# ping_lost FILE: transmitted minus received, from the summary of a ping log.
ping_lost() { awk -F', ' '/packets transmitted/ { split($1, t, " "); split($2, r, " "); print t[1] - r[1] }' "$1"; }
# acked UNIT TEXT: pppd acknowledged an LCP ConfReq containing TEXT (e.g. "<auth chap MS>").
acked() { grep -F "sent [LCP ConfAck" "/tmp/pppd-$1.log" | grep -qF "$2"; }

# l2tp_start USER PASSWORD [xl2tpd LAC lines...]: stock xl2tpd (LAC) + pppd, one tunnel and
# one session to the gateway, interface ppp0, pppd's debug log in /tmp/pppd-0.log and
# xl2tpd's in /tmp/xl2tpd.log. The pppd side allows only MS-CHAPv2 and asks for no MPPE
# (L2TP sessions carry none by default). Extra arguments are added to the [lac] section.
l2tp_start() {
  local user=$1 pw=$2; shift 2
  mkdir -p /etc/xl2tpd /var/run/xl2tpd
  : >/tmp/pppd-0.log
  cat >/etc/xl2tpd/xl2tpd.conf <<CONF
[global]
port = 1701
debug tunnel = yes
debug avp = yes

[lac sluice]
lns = $SERVER
redial = no
require authentication = no
pppoptfile = /etc/ppp/options.l2tp-sluice
length bit = yes
$(printf '%s\n' "$@")
CONF
  cat >/etc/ppp/options.l2tp-sluice <<OPTS
name $user
password $pw
remotename sluice
refuse-pap
refuse-eap
refuse-chap
refuse-mschap
noauth
usepeerdns
nodefaultroute
noipdefault
nobsdcomp
nodeflate
noccp
unit 0
debug
logfile /tmp/pppd-0.log
OPTS
  xl2tpd -D -c /etc/xl2tpd/xl2tpd.conf -p /var/run/xl2tpd.pid -C /var/run/xl2tpd/l2tp-control \
    >/tmp/xl2tpd.log 2>&1 &
  XL2TPD=$!
  local i=0
  while [ $i -lt 50 ] && [ ! -p /var/run/xl2tpd/l2tp-control ]; do sleep 0.1; i=$((i + 1)); done
  echo "c sluice" >/var/run/xl2tpd/l2tp-control
}

# l2tp_wait [SECONDS]: wait until ppp0 is up with its address (0) or xl2tpd exits (1).
l2tp_wait() {
  local t=${1:-30} i=0
  while [ $i -lt $((t * 10)) ]; do
    grep -q "^Script /etc/ppp/ip-up finished" /tmp/pppd-0.log && return 0
    kill -0 "$XL2TPD" 2>/dev/null || return 1
    sleep 0.1; i=$((i + 1))
  done
  return 1
}

# l2tp_stop: hang up the session and the tunnel (xl2tpd sends CDN and StopCCN), then stop.
l2tp_stop() {
  echo "d sluice" >/var/run/xl2tpd/l2tp-control 2>/dev/null || true
  local i=0
  while [ $i -lt 50 ] && pgrep -x pppd >/dev/null; do sleep 0.1; i=$((i + 1)); done
  kill "$XL2TPD" 2>/dev/null || true
  wait "$XL2TPD" 2>/dev/null || true
}

# ipsec_start IKE ESP [extra ipsec.conf conn lines...]: stock strongSwan (charon via the
# ipsec starter) as an IKEv1 PSK initiator of a transport-mode SA protecting L2TP
# (udp/1701 both ends), as the Debian/Ubuntu L2TP/IPsec client guides configure it; the
# proposals are strict (IKE and ESP strings in strongSwan syntax, with '!'). charon logs
# to /tmp/charon.log (ike and knl at level 2).
ipsec_start() {
  local ike=$1 esp=$2; shift 2
  # IPSEC_CERT=FILE (with IPSEC_KEY, and IPSEC_CA: CA files, space-separated): RSA
  # signatures with X.509 instead of the pre-shared key; the gateway is accepted by any ID
  # its certificate confirms.
  local auth="authby=secret"
  if [ -n "${IPSEC_CERT:-}" ]; then
    install -m 644 "$IPSEC_CERT" /etc/ipsec.d/certs/client.pem
    install -m 600 "$IPSEC_KEY" /etc/ipsec.d/private/client.key
    local ca; for ca in $IPSEC_CA; do install -m 644 "$ca" "/etc/ipsec.d/cacerts/$(basename "$ca")"; done
    auth="authby=rsasig
  leftcert=client.pem"
  fi
  cat >/etc/ipsec.conf <<CONF
config setup
  charondebug="ike 2, knl 1, net 1, cfg 1"
conn %default
  keyexchange=ikev1
  ikelifetime=3h
  keylife=1h
  rekeymargin=3m
  keyingtries=1
conn sluice
  $auth
  type=transport
  left=%defaultroute
  leftprotoport=17/1701
  right=$SERVER
  rightid=%any
  rightprotoport=17/1701
  ike=$ike!
  esp=$esp!
  auto=add
$(printf '  %s\n' "$@")
CONF
  if [ -n "${IPSEC_CERT:-}" ]; then
    echo ": RSA client.key" >/etc/ipsec.secrets
  else
    echo "%any %any : PSK \"${IPSEC_PSK:-correct-horse-battery}\"" >/etc/ipsec.secrets
  fi
  chmod 600 /etc/ipsec.secrets
  cat >/etc/strongswan.d/sluice-log.conf <<'LOGCONF'
charon {
  filelog {
    lab { path = /tmp/charon.log
      time_format = %T
      flush_line = yes
      default = 1
      ike = 2
      knl = 1 }
  }
}
LOGCONF
  ipsec start >/tmp/ipsec-start.log 2>&1
  # The starter loads the conn asynchronously: wait until charon knows it.
  local i=0
  while [ $i -lt 150 ] && ! ipsec statusall 2>/dev/null | grep -q '^ *sluice:'; do sleep 0.1; i=$((i + 1)); done
}

# ipsec_up: bring the conn up (IKE Main Mode + Quick Mode); 0 once the CHILD_SA is installed.
ipsec_up() {
  local n
  for n in 1 2 3; do
    ipsec up sluice >>/tmp/ipsec-up.log 2>&1 && ipsec status sluice | grep -q INSTALLED && return 0
    sleep 1
  done
  return 1
}

# ipsec_stop: tear the SAs down (DELETEs to the gateway) and stop charon.
ipsec_stop() {
  ipsec down sluice >/tmp/ipsec-down.log 2>&1 || true
  ipsec stop >/dev/null 2>&1 || true
  local i=0
  while [ $i -lt 50 ] && pgrep -x charon >/dev/null; do sleep 0.1; i=$((i + 1)); done
}

# pptpd_start LOCALIP REMOTEIP_RANGE USER PASSWORD: stock pptpd + pppd (kernel PPP and MPPE)
# as a server: MS-CHAPv2 only, MPPE-128 required, MTU 1400; pppd's debug log in
# /tmp/pppd-server.log, pptpd's in /tmp/pptpd.log. Returns once pptpd runs.
pptpd_start() {
  cat >/etc/pptpd.conf <<CONF
option /etc/ppp/pptpd-options
localip $1
remoteip $2
CONF
  cat >/etc/ppp/pptpd-options <<'CONF'
name pptpd
refuse-pap
refuse-chap
refuse-mschap
require-mschap-v2
require-mppe-128
nobsdcomp
nodeflate
novj
novjccomp
nodefaultroute
mtu 1400
mru 1404
lock
debug
logfile /tmp/pppd-server.log
CONF
  echo "$3 * \"$4\" *" >/etc/ppp/chap-secrets
  pptpd --fg >/tmp/pptpd.log 2>&1 &
  sleep 1
}
