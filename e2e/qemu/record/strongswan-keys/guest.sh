# Not a test: records a strongSwan IKEv1 session with its keys logged, for the known-answer
# test in dataplane/ike/tests/vectors/strongswan_log.py. Run it like a scenario, by path:
#   SLUICE_E2E_KEEP=1 e2e/qemu/run.sh e2e/qemu/record/strongswan-keys
# and cut the lines between the CHARON markers out of the guest's serial log.
# lab-timeout: 200
source ./lib.sh
# Raise charon's file log to level 4 (keys, nonces, payload fields) before it starts.
ipsec() {
  if [ "$1" = start ]; then
    sed -i 's/ike = 2/ike = 4/; s/^      default = 1/      default = 4/' /etc/strongswan.d/sluice-log.conf
  fi
  command ipsec "$@"
}
ipsec_start aes128-sha1-modp2048 aes128-sha1
check "IKE SA + CHILD_SA up" ipsec_up
sleep 1
echo "=====CHARON-BEGIN"
cat /tmp/charon.log
echo "=====CHARON-END"
ipsec_stop
summary
