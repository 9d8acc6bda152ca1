# Baseline L2TP/IPsec server (bench-ipsec.sh phase a): stock strongSwan (charon, kernel
# XFRM) as IKEv1 PSK responder of transport-mode SAs for udp/1701, xl2tpd as LNS with pppd
# (MS-CHAPv2, no MPPE: IPsec encrypts), address pool 10.200.0.0/24 with 10.200.0.1 on the
# server side, and iperf3 -s reachable through the tunnel. TCP 5299 opens once ready.
source ./lib.sh
cat >/etc/ipsec.conf <<'CONF'
config setup
  charondebug="ike 1, knl 1, net 1, cfg 1"
conn %default
  keyexchange=ikev1
  ikelifetime=3h
  keylife=1h
conn l2tp-psk
  authby=secret
  type=transport
  left=%defaultroute
  leftprotoport=17/1701
  right=%any
  rightprotoport=17/%any
  ike=aes128-sha1-modp2048!
  esp=aes128-sha1!
  rekey=no
  auto=add
CONF
echo '%any %any : PSK "correct-horse-battery"' >/etc/ipsec.secrets
chmod 600 /etc/ipsec.secrets
cat >/etc/strongswan.d/sluice-log.conf <<'LOGCONF'
charon {
  filelog {
    lab { path = /tmp/charon-server.log
      time_format = %T
      flush_line = yes
      default = 1 }
  }
}
LOGCONF
ipsec start >/tmp/ipsec-start.log 2>&1
for _ in $(seq 150); do ipsec statusall 2>/dev/null | grep -q '^ *l2tp-psk:' && break; sleep 0.1; done

mkdir -p /etc/xl2tpd /var/run/xl2tpd
cat >/etc/xl2tpd/xl2tpd.conf <<'CONF'
[global]
port = 1701

[lns default]
ip range = 10.200.0.10-10.200.0.200
local ip = 10.200.0.1
require authentication = yes
name = sluice
pppoptfile = /etc/ppp/options.xl2tpd-bench
length bit = yes
CONF
cat >/etc/ppp/options.xl2tpd-bench <<'OPTS'
name sluice
require-mschap-v2
refuse-pap
refuse-chap
refuse-mschap
refuse-eap
noccp
nobsdcomp
nodeflate
novj
novjccomp
nodefaultroute
mtu 1400
mru 1400
debug
logfile /tmp/pppd-server.log
OPTS
echo 'alice sluice "alice-secret" *' >/etc/ppp/chap-secrets
chmod 600 /etc/ppp/chap-secrets
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
xl2tpd -D -c /etc/xl2tpd/xl2tpd.conf -p /var/run/xl2tpd.pid -C /var/run/xl2tpd/l2tp-control >/tmp/xl2tpd-server.log 2>&1 &
sleep 1
iperf3 -s -p 5299 >/dev/null 2>&1 &   # readiness beacon for the client
mark ready
wait "$iperf_pid"
ip -s xfrm state | grep -E "^src|proto esp|enc |auth|bytes" || true
