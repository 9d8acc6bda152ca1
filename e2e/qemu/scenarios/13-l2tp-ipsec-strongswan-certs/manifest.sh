# Scenario 13's manifest: L2TP only inside IPsec with RSA signatures, no pre-shared key.
# The gateway's certificate and the client CAs are the sluice-ike test fixtures, put into
# a kubernetes.io/tls Secret the way cert-manager issues one (ca.crt: the root and the
# issuing intermediate, since strongSwan sends only its end-entity certificate).
set -euo pipefail
certs=$(cd "$(dirname "$0")/../../../../dataplane/ike/tests/certs" && pwd)
indent() { sed 's/^/    /' "$@"; }
cat <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: { name: lab }
spec:
  l2tp:
    enabled: true
    ipsec:
      certificateSecretRef: { name: vpn-cert }
      clientCaSecretRef: { name: vpn-cert }
  ppp:
    localAddress: 10.200.0.1
    addressPool: 10.200.0.0/24
---
apiVersion: v1
kind: Secret
metadata: { name: vpn-cert }
type: kubernetes.io/tls
stringData:
  tls.crt: |
$(indent "$certs/gateway-chain.pem")
  tls.key: |
$(indent "$certs/gateway.key")
  ca.crt: |
$(indent "$certs/ca.pem" "$certs/int.pem")
---
apiVersion: v1
kind: Secret
metadata: { name: vpn }
stringData:
  alice: alice-secret
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: { name: alice }
spec:
  gatewayRef: { name: lab }
  passwordSecretRef: { name: vpn, key: alice }
YAML
