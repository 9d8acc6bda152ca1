# Scenario 13: stock strongSwan with RSA signatures and X.509 certificates (IKEv1 Main
# Mode, RFC 2409 §5.1; no pre-shared key anywhere) + xl2tpd + pppd against the gateway:
# both ends check each other's certificate chain, then PPP over L2TP inside ESP.
# lab-timeout: 240
source ./lib.sh

export IPSEC_CERT=alice.pem IPSEC_KEY=alice.key IPSEC_CA="ca.pem int.pem"
ipsec_start aes256-sha256-modp2048 aes128-sha1
check "strongSwan: IKE SA with RSA signatures + transport-mode CHILD_SA installed" ipsec_up
check "strongSwan verified the gateway's certificate chain" \
  grep -qE "authentication of '[^']*CN=vpn\.example\.test' with RSA[A-Z0-9_]* successful" /tmp/charon.log
l2tp_start alice alice-secret
check "ppp0 comes up over L2TP inside ESP" l2tp_wait 40
ip route add 192.168.77.0/24 dev ppp0 2>/dev/null || true
check "ping a host on the gateway side" ping -c 3 -i 0.3 -W 3 "$LAN_HOST"
mark up
check "sustained ping while the host checks the gateway" ping -c 10 -i 0.5 -W 3 "$LAN_HOST"
l2tp_stop
ipsec_stop
grep -E "authentication of|IKE_SA sluice\[[0-9]+\] established|CHILD_SA sluice\{[0-9]+\} established" /tmp/charon.log | head -n 6
summary
