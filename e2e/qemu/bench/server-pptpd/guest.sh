# Baseline server: stock pptpd + pppd (kernel PPP and MPPE), iperf3 server on the tunnel side.
source ./lib.sh
cat >/etc/pptpd.conf <<'CONF'
option /etc/ppp/pptpd-options
localip 10.200.0.1
remoteip 10.200.0.2-20
CONF
cat >/etc/ppp/pptpd-options <<'CONF'
name sluice
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
echo 'alice * "alice-secret" *' >/etc/ppp/chap-secrets
iperf3 -s -1 >/tmp/iperf3-server.log 2>&1 &
iperf_pid=$!
pptpd --fg >/tmp/pptpd.log 2>&1 &
sleep 1
mark ready
wait "$iperf_pid"
