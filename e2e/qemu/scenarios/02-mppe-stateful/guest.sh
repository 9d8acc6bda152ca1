# Scenario 2: stateful MPPE-128. pppd's `mppe-stateful` only *allows* stateful mode: it asks
# for stateless and goes stateful because the manifest says `stateful: prefer` (the gateway
# requests H=0 and Naks pppd's stateless request once).
# lab-timeout: 120
source ./lib.sh

pptp_start 0 alice alice-secret require-mppe-128 mppe-stateful refuse-pap refuse-eap refuse-chap refuse-mschap
check "mppe-stateful: ppp0 comes up" pptp_wait 0 30
check "mppe-stateful: pppd enabled MPPE 128-bit stateful" grep -q "MPPE 128-bit stateful compression enabled" /tmp/pppd-0.log
ip route add 192.168.77.0/24 dev ppp0
check "mppe-stateful: 20 pings to a host on the gateway side" ping -c 20 -i 0.1 -W 3 "$LAN_HOST"
check "mppe-stateful: 1400-byte ping with DF set" ping -c 3 -i 0.3 -W 3 -M do -s 1372 "$LAN_HOST"
check "mppe-stateful: bulk ICMP keeps the RC4 state in sync (100 x 1000 B)" ping -q -c 100 -i 0.01 -W 3 -s 1000 "$LAN_HOST"
pptp_stop 0
summary
