# Scenario 11: xl2tpd with L2TP tunnel authentication (challenge = yes, the secret from
# /etc/xl2tpd/l2tp-secrets): a wrong secret is refused, the right one comes up.
# lab-timeout: 150
source ./lib.sh

mkdir -p /etc/xl2tpd
echo "* * wrong-secret" >/etc/xl2tpd/l2tp-secrets
chmod 600 /etc/xl2tpd/l2tp-secrets
l2tp_start alice alice-secret "challenge = yes"
check "wrong tunnel secret: no session" not l2tp_wait 15
l2tp_stop
echo "* * lab-tunnel-secret" >/etc/xl2tpd/l2tp-secrets
l2tp_start alice alice-secret "challenge = yes"
check "right tunnel secret: ppp0 comes up" l2tp_wait 40
check "ping the gateway's tunnel address" ping -c 3 -i 0.3 -W 3 -I ppp0 10.200.0.1
l2tp_stop
summary
