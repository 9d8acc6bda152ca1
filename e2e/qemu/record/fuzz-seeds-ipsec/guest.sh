# Not a test: scenario 12 (stock strongSwan + xl2tpd + pppd, three proposal pairs) with room
# for a slow TCG boot and charon's keys logged (as in strongswan-keys), for
# e2e/qemu/record/capture.sh: e2e/fuzz/seeds-from-pcap.py decrypts the captured IKE messages
# with them (fuzz seed corpora, docs/fuzzing.md).
# lab-timeout: 1200
ipsec() {
  if [ "$1" = start ]; then
    sed -i 's/ike = 2/ike = 4/; s/^      default = 1/      default = 4/' /etc/strongswan.d/sluice-log.conf
  fi
  command ipsec "$@"
}
trap 'echo "=====CHARON-BEGIN"; cat /tmp/charon.log; echo "=====CHARON-END"' EXIT
source ./scenario.sh
