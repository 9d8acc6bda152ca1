#!/usr/bin/env bash
# The real-apiserver tier: a real etcd + kube-apiserver + kube-controller-manager
# on 127.0.0.1 (lib.sh), no kubelet. Checks, each pass/fail:
#   1. the CRDs apply server-side with no warning and are Established;
#   2. every CEL rule and schema constraint (crdgen --cases, completeness checked by
#      a unit test): a valid object accepted, an invalid one rejected naming the field;
#   3. helm install; the operator, out of cluster with the chart ServiceAccount's
#      token, reconciles examples/kubernetes.yaml (fake Nodes; pods bound and marked
#      Ready here) and removes the finalizer of earlier versions;
#   4. the full loop: data-plane agents in network namespaces connect over mTLS, the
#      in-repo client opens a PPTP and an L2TP/IPsec session, `kubectl get vuser`
#      shows them CONNECTED with their ADDRESS, `kubectl get vgw` their SESSIONS;
#   5. operator restart and leader failover: no write to any object whose state did
#      not change (resourceVersions before and after);
#   6. deleting a VpnUser ends its session;
#   7. CA rotation forced through the CA Secret's annotation (short --ca-propagation):
#      the agents' bundle holds both CAs, their certificate is re-issued under the new
#      one, the old CA is dropped, the agent stays connected throughout and reconnects
#      with the new files; a certificate of the dropped CA is refused;
#   8. helm upgrade to a chart with a changed CRD; helm uninstall leaves nothing of
#      the release behind and the gateways' namespace deletes.
# The release is installed with watchNamespaces=[vpn, legacy] (Roles in those
# namespaces, a ClusterRole with list/watch on Nodes only): the operator is never
# refused a request, and a gateway in another namespace is left alone.
# Without the binaries (README.md) it prints one SKIPPED line and exits 0.
# Needs root (network namespaces), kubectl, openssl, python3, helm (e2e/helm/check.sh
# caches it).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
source "$here/lib.sh"

if ! kube_binaries_present; then
  echo "SKIPPED: real-apiserver tier (no kube-apiserver binaries, see e2e/kube/README.md)"
  exit 0
fi
: "${SLUICE_BIN:=$top/target/release/sluice-dataplane}"
: "${OPERATOR_BIN:=$top/target/release/sluice-operator}"
: "${CRDGEN_BIN:=$top/target/release/crdgen}"
HELM=${HELM:-${SLUICE_E2E_CACHE:-/var/cache/sluice-e2e}/helm/helm}
export SLUICE_BIN
source "$top/e2e/netns/lib.sh"
T_START=$SECONDS

OP_PIDS=()
cleanup() {
  local rc=$?
  for p in "${OP_PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  kube_stop
  if [ "$rc" -ne 0 ] || [ "$FAILED" -ne 0 ]; then
    cp "$KUBE_DIR"/*.log "$WORK/" 2>/dev/null || true
  fi
  rm -rf "${KUBE_DIR:?}/etcd"
  netns_cleanup
}
trap cleanup EXIT
export HELM_CACHE_HOME="$WORK/helm-cache" HELM_CONFIG_HOME="$WORK/helm-config" HELM_DATA_HOME="$WORK/helm-data"

log "starting etcd, kube-apiserver and kube-controller-manager ($(kube_version))"
kube_start "$WORK/kube"
check "control plane up: $(kube_version)" kubectl get --raw /readyz

# ------------------------------------------------------------------ 1. CRDs
kubectl apply --server-side -f "$top/crds/" >"$WORK/crd-apply.out" 2>&1 || true
check "CRDs apply server-side" grep -q 'vpngateways.sluice.dev serverside-applied' "$WORK/crd-apply.out"
check "CRD apply prints no warning" bash -c "! grep -i warning '$WORK/crd-apply.out'"
check "the three CRDs are Established" kubectl wait --for condition=established --timeout=30s \
  crd/vpngateways.sluice.dev crd/vpnusers.sluice.dev crd/vpnclients.sluice.dev

# ------------------------------------------------------------ 2. schema cases
kubectl create namespace cases >/dev/null
"$CRDGEN_BIN" --cases >"$WORK/cases.jsonl"
python3 "$here/schema_cases.py" "https://127.0.0.1:$API_PORT" "$KUBE_DIR/pki/ca.crt" \
  "$KUBE_DIR/pki/admin.crt" "$KUBE_DIR/pki/admin.key" cases <"$WORK/cases.jsonl" >"$WORK/cases.out" || true
read -r cp cf < <(tail -n 1 "$WORK/cases.out")
grep '^FAIL' "$WORK/cases.out" >&2 || true
log "schema cases: $cp passed, $cf failed ($(wc -l <"$WORK/cases.jsonl") constraints)"
PASSED=$((PASSED + cp)); FAILED=$((FAILED + cf))
check "kubectl explain shows unwrapped descriptions" bash -c \
  "kubectl explain vpngateway.spec.drainTimeout | tr -s ' \\n' ' ' | grep -q 'waits for its sessions to end, as a Go duration'"
kubectl delete -f "$top/crds/" --wait >/dev/null

# ------------------------------------------------------------ 3. helm install
# The gateways' namespaces exist before the chart puts its Roles into them.
kubectl create namespace vpn >/dev/null
kubectl create namespace legacy >/dev/null
kubectl create namespace elsewhere >/dev/null
"$HELM" install sluice "$top/charts/sluice" -n sluice-system --create-namespace \
  --set image.repository=sluice --set image.tag=test --set 'watchNamespaces={vpn,legacy}' \
  >"$WORK/helm-install.out" 2>&1 || true
check "helm install succeeds (CRDs included)" grep -q 'STATUS: deployed' "$WORK/helm-install.out"
check "the chart's CRDs are Established" kubectl wait --for condition=established --timeout=30s \
  crd/vpngateways.sluice.dev crd/vpnusers.sluice.dev crd/vpnclients.sluice.dev
check "watchNamespaces: Roles in vpn and legacy, the ClusterRole only lists and watches Nodes" bash -c \
  "kubectl get role -n vpn sluice-operator-gateways && kubectl get role -n legacy sluice-operator-gateways &&
   test \"\$(kubectl get clusterrole sluice-operator -o jsonpath='{range .rules[*]}{.resources} {.verbs}{end}')\" = '[\"nodes\"] [\"list\",\"watch\"]'"
check "the operator's ServiceAccount cannot read Secrets outside the watched namespaces" bash -c \
  "! kubectl auth can-i get secrets -n elsewhere --as system:serviceaccount:sluice-system:sluice &&
   kubectl auth can-i get secrets -n vpn --as system:serviceaccount:sluice-system:sluice"

fake_node node-1 192.0.2.11
fake_node node-2 192.0.2.12
fake_node node-3 192.0.2.13

# The operator, out of cluster, with the chart ServiceAccount's token.
TOKEN=$(kubectl create token sluice -n sluice-system --duration 2h)
kube_kubeconfig "$WORK/operator.kubeconfig" --token "$TOKEN"
# A gateway left with the finalizer of earlier versions.
kubectl apply -f - >/dev/null <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: {name: old, namespace: legacy, finalizers: [sluice.dev/cleanup]}
spec: {replicas: 0, ppp: {localAddress: 10.202.0.1, addressPool: 10.202.0.0/24}}
YAML

# Network: [root: operator 10.97.0.1] --veth-- [gw: agent, 10.97.1.1] --veth-- [cl: clients]
GW=$(mkns gw); CL=$(mkns cl)
ip link add "kh$$" type veth peer name "kn$$"
ip link set "kn$$" netns "$GW"
ip addr add 10.97.0.1/24 dev "kh$$"; ip link set "kh$$" up
ip -n "$GW" addr add 10.97.0.2/24 dev "kn$$"; ip -n "$GW" link set "kn$$" up
link "$GW" 10.97.1.1/24 "$CL" 10.97.1.2/24
ip -n "$CL" route add default via 10.97.1.1
trap 'ip link del "kh$$" 2>/dev/null || true; cleanup' EXIT
trap 'FAILED=$((FAILED + 1)); exit 1' TERM INT

start_operator() {  # IDENTITY HTTP_PORT [EXTRA ARGS...]
  local id=$1 port=$2
  shift 2
  KUBECONFIG="$WORK/operator.kubeconfig" "$OPERATOR_BIN" run --namespace sluice-system \
    --pod-name "$id" --grpc-listen 10.97.0.1:50051 --http-listen "127.0.0.1:$port" \
    --grpc-service sluice-grpc --lease-name sluice-leader --ca-secret sluice-ca \
    --owner-deployment sluice-operator --dataplane-image sluice:test \
    --watch-namespaces vpn,legacy "$@" \
    >>"$WORK/operator-$id.log" 2>&1 &
  OP_PIDS+=($!)
  OP_PID=$!
}
stop_operator() {  # PID: SIGTERM, then at most 15 s for a clean exit
  local pid=$1 i
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
  if kill -0 "$pid" 2>/dev/null; then
    log "operator $pid did not exit within 15 s of SIGTERM"
    FAILED=$((FAILED + 1))
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}
reconciles() {  # HTTP_PORT: reconciles done so far
  python3 -c 'import sys,urllib.request
t=urllib.request.urlopen(sys.argv[1],timeout=5).read().decode()
print(int(sum(float(l.split()[-1]) for l in t.splitlines() if l.startswith("sluice_operator_reconciles_total{"))))' \
    "http://127.0.0.1:$1/metrics" 2>/dev/null || echo 0
}
export -f reconciles
start_operator op-a 18081
A_PID=$OP_PID
wait_until 30 kubectl get lease -n sluice-system sluice-leader || true
check "operator op-a leads (Lease holder)" bash -c \
  "kubectl get lease -n sluice-system sluice-leader -o jsonpath='{.spec.holderIdentity}' | grep -qx op-a"

kubectl apply -f "$top/examples/kubernetes.yaml" >/dev/null
check "legacy finalizer removed" wait_until 20 bash -c \
  "test -z \"\$(kubectl get vgw old -n legacy -o jsonpath='{.metadata.finalizers}')\""
check "office: data-plane Deployment with 2 replicas" wait_until 20 bash -c \
  "test \"\$(kubectl get deploy office-sluice -n vpn -o jsonpath='{.spec.replicas}')\" = 2"
check "office: 2 pods created by the ReplicaSet" wait_until 20 bash -c \
  "test \$(kubectl get pods -n vpn -l sluice.dev/gateway=office -o name | wc -l) = 2"
check "office: Progressing=True WaitingForPods while the pods are pending" wait_until 20 bash -c \
  "kubectl get vgw office -n vpn -o jsonpath='{.status.conditions[?(@.type==\"Progressing\")].reason}' | grep -qx WaitingForPods"
check "alice: Ready=False GatewayNotReady while no data-plane pod is ready" wait_until 20 bash -c \
  "kubectl get vuser alice -n vpn -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].reason}' | grep -qx GatewayNotReady"
i=1
for pod in $(kubectl get pods -n vpn -l sluice.dev/gateway=office -o name | cut -d/ -f2); do
  bind_pod vpn "$pod" "node-$i" || true; pod_ready vpn "$pod" || true; i=$((i + 1))
done
check "office: READY 2 and ENDPOINTS of both nodes" wait_until 30 bash -c \
  "kubectl get vgw office -n vpn -o jsonpath='{.status.readyReplicas} {.status.endpoints}' | grep -qx '2 \[\"192.0.2.11\",\"192.0.2.12\"\]'"
check "office: Ready=True, Progressing=False Stable" wait_until 20 bash -c \
  "kubectl get vgw office -n vpn -o jsonpath='{.status.conditions[?(@.type==\"Ready\")].status}{.status.conditions[?(@.type==\"Progressing\")].reason}' | grep -qx TrueStable"
check "alice and bob: Ready=True" wait_until 20 bash -c \
  "test \"\$(kubectl get vuser -n vpn -o jsonpath='{range .items[*]}{.status.conditions[?(@.type==\"Ready\")].status}{end}')\" = TrueTrue"
check "the operator was never forbidden anything" bash -c "! grep -i forbidden '$WORK/operator-op-a.log'"
kubectl apply -f - >/dev/null <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: {name: stray, namespace: elsewhere}
spec: {replicas: 1, ppp: {localAddress: 10.203.0.1, addressPool: 10.203.0.0/24}}
YAML
sleep 3
check "a gateway outside watchNamespaces gets nothing (no Deployment, Secret or status)" bash -c \
  "test -z \"\$(kubectl get deploy,secrets -n elsewhere -o name | grep sluice)\" &&
   test -z \"\$(kubectl get vgw stray -n elsewhere -o jsonpath='{.status}')\""
check "operator logs carry no colour codes" bash -c "! grep -q \$'\\033\\[' '$WORK/operator-op-a.log'"
check "CA Secret and Lease are owned by the operator's Deployment" bash -c \
  "kubectl get secret/sluice-ca lease/sluice-leader -n sluice-system -o jsonpath='{range .items[*]}{.metadata.ownerReferences[0].name} {end}' | grep -qx 'sluice-operator sluice-operator '"

# --------------------------------------------------------------- 4. full loop
kubectl apply -f - >/dev/null <<YAML
apiVersion: sluice.dev/v1alpha1
kind: VpnGateway
metadata: {name: loop, namespace: vpn}
spec:
  replicas: 1
  l2tp: {enabled: true, ipsec: {preSharedKeySecretRef: {name: loop-psk}}}
  ppp: {localAddress: 10.201.0.1, addressPool: 10.201.0.0/24, keepaliveTimeout: 0s}
---
apiVersion: v1
kind: Secret
metadata: {name: loop-psk, namespace: vpn}
stringData: {psk: correct-horse-battery}
---
apiVersion: v1
kind: Secret
metadata: {name: loop-passwords, namespace: vpn}
stringData: {carol: Carol-pw-1, dave: Dave-pw-22}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: {name: carol, namespace: vpn}
spec: {gatewayRef: {name: loop}, passwordSecretRef: {name: loop-passwords, key: carol}}
---
apiVersion: sluice.dev/v1alpha1
kind: VpnUser
metadata: {name: dave, namespace: vpn}
spec: {gatewayRef: {name: loop}, passwordSecretRef: {name: loop-passwords, key: dave}}
YAML
wait_until 20 bash -c "kubectl get pods -n vpn -l sluice.dev/gateway=loop -o name | grep -q pod/" || true
LOOP_POD=$(kubectl get pods -n vpn -l sluice.dev/gateway=loop -o jsonpath='{.items[0].metadata.name}' || true)
bind_pod vpn "$LOOP_POD" node-3 || true
pod_ready vpn "$LOOP_POD" || true
wait_until 20 kubectl get secret -n vpn loop-sluice-agent-tls || true
mkdir -p "$WORK/agent-tls"
for k in ca.crt tls.crt tls.key; do
  kubectl get secret -n vpn loop-sluice-agent-tls -o jsonpath="{.data.${k//./\\.}}" | base64 -d >"$WORK/agent-tls/$k"
done
check "agent arguments point at the Service's port, not a replica's listen address" bash -c \
  "kubectl get deploy loop-sluice -n vpn -o yaml | grep -q -- '--operator=https://sluice-grpc.sluice-system.svc:50051'"
check "data-plane pods: metrics and probes on 9810, admin on loopback 9811 with a token, drain through it" bash -c \
  "kubectl get deploy loop-sluice -n vpn -o yaml >'$WORK/loop-deploy.yaml' &&
   grep -q -- '--metrics-listen=0.0.0.0:9810' '$WORK/loop-deploy.yaml' &&
   grep -q -- '--admin-listen=127.0.0.1:9811' '$WORK/loop-deploy.yaml' &&
   grep -q -- '--endpoint=127.0.0.1:9811' '$WORK/loop-deploy.yaml' &&
   grep -q -- '--token-file=/run/sluice/admin-token' '$WORK/loop-deploy.yaml' &&
   grep -q 'mountPath: /run/sluice' '$WORK/loop-deploy.yaml'"
# The data plane's listeners: the split metrics/admin flags once the daemon has them.
if "$SLUICE_BIN" agent --help 2>/dev/null | grep -q -- '--metrics-listen'; then
  AGENT_HTTP=(--metrics-listen 10.97.1.1:9810 --admin-listen 127.0.0.1:9811 --admin-token-file "$WORK/admin-token")
else
  AGENT_HTTP=(--http 10.97.1.1:9810)
fi
bg "$GW" agent "$SLUICE_BIN" agent --operator https://10.97.0.1:50051 \
  --server-name sluice-grpc.sluice-system.svc --gateway vpn/loop --node node-3 --pod "$LOOP_POD" \
  --tls-dir "$WORK/agent-tls" "${AGENT_HTTP[@]}" --report-interval 1
check "agent connects over mTLS and applies its configuration" wait_until 30 bash -c \
  "ip netns exec $GW python3 -c 'import urllib.request;urllib.request.urlopen(\"http://10.97.1.1:9810/readyz\",timeout=2)'"
bg "$CL" carol "$CLIENT_BIN" --server 10.97.1.1 --user carol --password Carol-pw-1 --duration 600
bg "$CL" dave "$CLIENT_BIN" --protocol l2tp --server 10.97.1.1 --user dave --password Dave-pw-22 \
  --ipsec-psk correct-horse-battery --duration 600
wait_for "$WORK/carol.log" "^(UP|FAILED)" 30 || true
wait_for "$WORK/dave.log" "^(UP|FAILED)" 40 || true
check "carol: PPTP session up" grep -q '^UP' "$WORK/carol.log"
check "dave: L2TP/IPsec session up" grep -q '^UP' "$WORK/dave.log"
check "kubectl get vuser: carol CONNECTED with her ADDRESS" wait_until 20 bash -c \
  "kubectl get vuser carol -n vpn --no-headers | grep -Eq 'loop +true +10\\.201\\.0\\.[0-9]+ +pptp'"
check "kubectl get vuser: dave CONNECTED with his ADDRESS" wait_until 20 bash -c \
  "kubectl get vuser dave -n vpn --no-headers | grep -Eq 'loop +true +10\\.201\\.0\\.[0-9]+ +l2tp'"
check "kubectl get vgw: loop has 2 SESSIONS" wait_until 20 bash -c \
  "kubectl get vgw loop -n vpn --no-headers | awk '{print \$4}' | grep -qx 2"
kubectl get vgw,vuser -A >"$WORK/get.out" 2>&1 || true

# ------------------------------------------- 5. restart and failover: no writes
# resourceVersions of everything in the gateways' namespaces, once they are stable.
versions() {
  kubectl get vgw,vuser,deploy,rs,pods,secrets,services,serviceaccounts,pdb -n vpn \
    -o jsonpath='{range .items[*]}{.kind}/{.metadata.name}={.metadata.resourceVersion}{"\n"}{end}' | sort
}
stable_versions() {  # waits until two reads 3 s apart agree
  local a b
  a=$(versions)
  for _ in $(seq 10); do
    sleep 3; b=$(versions)
    [ "$a" = "$b" ] && break
    a=$b
  done
  echo "$b"
}
# The loop pod's deletion cost follows its 2 sessions (patched at most once a minute):
# wait until it does, so a throttled patch cannot land in the windows below.
wait_until 75 bash -c "kubectl get pod -n vpn '$LOOP_POD' \
  -o jsonpath='{.metadata.annotations.controller\\.kubernetes\\.io/pod-deletion-cost}' | grep -qx 2" || true
stable_versions >"$WORK/rv-before"
log "restarting the operator"
stop_operator "$A_PID"
check "SIGTERM releases the Lease" bash -c \
  "test -z \"\$(kubectl get lease -n sluice-system sluice-leader -o jsonpath='{.spec.holderIdentity}')\""
start_operator op-a 18081
A_PID=$OP_PID
wait_until 30 bash -c "test \$(reconciles 18081) -ge 6" || true
sleep 25  # past the operator's 20 s session grace, so late writes would show
versions >"$WORK/rv-restart"
check "operator restart: reconciled everything again" bash -c "test \$(reconciles 18081) -ge 6"
check "operator restart: zero writes to unchanged objects" diff "$WORK/rv-before" "$WORK/rv-restart"
check "carol and dave stay connected across the restart" bash -c "! grep -q '^DOWN' '$WORK/carol.log' '$WORK/dave.log'"

log "leader failover: op-b waits, op-a stops"
start_operator op-b 18082
B_PID=$OP_PID
sleep 2
stop_operator "$A_PID"
check "leader failover: op-b takes the Lease" wait_until 30 bash -c \
  "kubectl get lease -n sluice-system sluice-leader -o jsonpath='{.spec.holderIdentity}' | grep -qx op-b"
wait_until 30 bash -c "test \$(reconciles 18082) -ge 6" || true
sleep 25
versions >"$WORK/rv-failover"
check "leader failover: zero writes to unchanged objects" diff "$WORK/rv-before" "$WORK/rv-failover"
check "the agent follows the new leader" wait_until 20 bash -c \
  "ip netns exec $GW python3 -c 'import urllib.request;t=urllib.request.urlopen(\"http://10.97.1.1:9810/metrics\",timeout=2).read().decode();assert \"sluice_operator_connected 1\" in t'"

# --------------------------------------------------- 6. delete a user: session ends
kubectl delete vuser dave -n vpn >/dev/null
wait_for "$WORK/dave.log" "^DOWN" 20 || true
check "deleting VpnUser dave ends his session" grep -q '^DOWN' "$WORK/dave.log"
check "carol's session is untouched" bash -c "! grep -q '^DOWN' '$WORK/carol.log'"
check "loop shows 1 session" wait_until 20 bash -c \
  "kubectl get vgw loop -n vpn --no-headers | awk '{print \$4}' | grep -qx 1"
# ------------------------------------------------ autoscaler without triggers
kubectl patch vgw office -n vpn --type merge -p \
  '{"spec":{"autoscaling":{"minReplicas":1,"maxReplicas":2,"targetSessionsPerReplica":10,"scaleDownStabilization":"5s"}}}' >/dev/null
check "autoscaler: an idle gateway scales down within its window plus a tick" wait_until 45 bash -c \
  "test \"\$(kubectl get vgw office -n vpn -o jsonpath='{.spec.replicas}')\" = 1"
kubectl get vgw office -n vpn -o yaml >"$WORK/office.yaml" 2>&1 || true

# ------------------------------------------------------------- 7. CA rotation
# No kubelet: copy the agent's Secret to its files whenever it changes, as the kubelet
# does for a mounted Secret.
sync_agent_tls() {
  local k tmp
  while :; do
    for k in ca.crt tls.crt tls.key; do
      tmp="$WORK/agent-tls/.$k.new"
      if kubectl get secret -n vpn loop-sluice-agent-tls -o jsonpath="{.data.${k//./\\.}}" 2>/dev/null | base64 -d >"$tmp" 2>/dev/null &&
        [ -s "$tmp" ] && ! cmp -s "$tmp" "$WORK/agent-tls/$k"; then
        mv -f "$tmp" "$WORK/agent-tls/$k"
      fi
    done
    sleep 1
  done
}
secret_key() {  # NAMESPACE SECRET KEY: the decoded value
  kubectl get secret -n "$1" "$2" -o jsonpath="{.data.${3//./\\.}}" | base64 -d
}
certs_in() { grep -c 'BEGIN CERTIFICATE' || true; }
export -f secret_key certs_in
# tls_probe CAFILE CERT KEY: "ok" if the operator's gRPC port completes an mTLS
# handshake with this client certificate and trusts nothing but CAFILE for the server.
tls_probe() {
  ip netns exec "$GW" python3 - "$@" <<'PY'
import socket, ssl, sys
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
ctx.load_verify_locations(sys.argv[1])
ctx.load_cert_chain(sys.argv[2], sys.argv[3])
ctx.set_alpn_protocols(["h2"])
try:
    with socket.create_connection(("10.97.0.1", 50051), timeout=3) as raw:
        with ctx.wrap_socket(raw, server_hostname="sluice-grpc.sluice-system.svc") as tls:
            tls.settimeout(1)
            try:
                tls.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(9))
                data = tls.recv(64)
            except socket.timeout:
                data = b"(quiet)"
            if not data:
                print("refused: closed"); sys.exit(1)
    print("ok")
except (ssl.SSLError, OSError) as e:
    print(f"refused: {e}"); sys.exit(1)
PY
}
mkdir -p "$WORK/old-ca"
cp "$WORK/agent-tls/tls.crt" "$WORK/agent-tls/tls.key" "$WORK/old-ca/"
secret_key sluice-system sluice-ca ca.crt >"$WORK/old-ca/ca.crt"
check "before the rotation: the agent's certificate passes the mTLS handshake" \
  tls_probe "$WORK/old-ca/ca.crt" "$WORK/old-ca/tls.crt" "$WORK/old-ca/tls.key"
sync_agent_tls &
OP_PIDS+=($!)
log "CA rotation: op-b restarts with --ca-propagation 5s, then the CA Secret is annotated"
stop_operator "$B_PID"
start_operator op-b 18082 --ca-propagation 5s
B_PID=$OP_PID
wait_until 30 bash -c "test \$(reconciles 18082) -ge 6" || true
kubectl annotate secret -n sluice-system sluice-ca sluice.dev/rotate=now >/dev/null
check "rotation 1/3: the agents' ca.crt holds the old and the new CA" wait_until 30 bash -c \
  "test \"\$(secret_key vpn loop-sluice-agent-tls ca.crt | certs_in)\" = 2"
check "rotation 1/3: the rotate annotation is consumed" bash -c \
  "test -z \"\$(kubectl get secret -n sluice-system sluice-ca -o jsonpath='{.metadata.annotations.sluice\.dev/rotate}')\""
check "rotation 2/3: the new CA signs, the old one is kept as previous.crt" wait_until 40 bash -c \
  "secret_key sluice-system sluice-ca previous.crt | cmp -s - '$WORK/old-ca/ca.crt'"
secret_key sluice-system sluice-ca ca.crt >"$WORK/new-ca.crt" || true
check "rotation 2/3: the agent certificate is re-issued under the new CA" wait_until 30 bash -c \
  "secret_key vpn loop-sluice-agent-tls tls.crt | openssl verify -CAfile '$WORK/new-ca.crt' >/dev/null"
check "rotation 3/3: the old CA is dropped; the agents trust the new CA only" wait_until 40 bash -c \
  "test -z \"\$(secret_key sluice-system sluice-ca previous.crt)\" &&
   secret_key vpn loop-sluice-agent-tls ca.crt | cmp -s - '$WORK/new-ca.crt'"
check "the agent stayed connected through the rotation" bash -c \
  "ip netns exec $GW python3 -c 'import urllib.request;t=urllib.request.urlopen(\"http://10.97.1.1:9810/metrics\",timeout=2).read().decode();assert \"sluice_operator_connected 1\" in t'"
check "carol's session survived the rotation" bash -c "! grep -q '^DOWN' '$WORK/carol.log'"
check "three rotation steps logged, nothing forbidden" bash -c \
  "test \$(grep -c 'CA rotation:' '$WORK/operator-op-b.log') -ge 3 && ! grep -i forbidden '$WORK/operator-op-b.log'"
sleep 2  # the copied files settle
check "the server presents a certificate of the new CA and takes the new client certificate" \
  tls_probe "$WORK/new-ca.crt" "$WORK/agent-tls/tls.crt" "$WORK/agent-tls/tls.key"
check "a client certificate of the dropped CA is refused" bash -c \
  "! tls_probe '$WORK/new-ca.crt' '$WORK/old-ca/tls.crt' '$WORK/old-ca/tls.key'"
log "restarting op-b: the agent reconnects with the rotated files"
stop_operator "$B_PID"
start_operator op-b 18082
B_PID=$OP_PID
check "the agent reconnects with the new CA's certificate" wait_until 40 bash -c \
  "ip netns exec $GW python3 -c 'import urllib.request;t=urllib.request.urlopen(\"http://10.97.1.1:9810/metrics\",timeout=2).read().decode();assert \"sluice_operator_connected 1\" in t'"
check "carol stays connected" bash -c "! grep -q '^DOWN' '$WORK/carol.log'"

# ------------------------------------------------------- 8. upgrade, uninstall
cp -r "$top/charts/sluice" "$WORK/chart-v2"
sed -i 's/^version: .*/version: 0.2.0-test/' "$WORK/chart-v2/Chart.yaml"
python3 - "$WORK/chart-v2/templates/crds.yaml" <<'PY'
import sys
p = sys.argv[1]; s = open(p).read()
s = s.replace("name: Endpoints", "name: Upgraded-Column", 1)
open(p, "w").write(s)
PY
"$HELM" upgrade sluice "$WORK/chart-v2" -n sluice-system --set image.repository=sluice \
  --set image.tag=test --set 'watchNamespaces={vpn,legacy}' >"$WORK/helm-upgrade.out" 2>&1 || true
check "helm upgrade succeeds" grep -q 'STATUS: deployed' "$WORK/helm-upgrade.out"
check "helm upgrade updated the CRD" bash -c \
  "kubectl get crd vpngateways.sluice.dev -o yaml | grep -q 'name: Upgraded-Column'"

stop_operator "$B_PID"
"$HELM" uninstall sluice -n sluice-system --wait >"$WORK/helm-uninstall.out" 2>&1 || true
check "helm uninstall succeeds" grep -q 'uninstalled' "$WORK/helm-uninstall.out"
check "uninstall: the CA Secret and the Lease go with the operator (garbage collector)" wait_until 40 bash -c \
  "test -z \"\$(kubectl get secrets,leases -n sluice-system -o name)\""
check "uninstall: no ClusterRole or ClusterRoleBinding of the release left" bash -c \
  "test -z \"\$(kubectl get clusterroles,clusterrolebindings -l app.kubernetes.io/instance=sluice -o name)\""
check "uninstall: CRDs kept (helm.sh/resource-policy: keep), gateways with no finalizer" bash -c \
  "kubectl get crd vpngateways.sluice.dev >/dev/null && test -z \"\$(kubectl get vgw -A -o jsonpath='{.items[*].metadata.finalizers}')\""
check "uninstall: the Roles in the watched namespaces go too" bash -c \
  "test -z \"\$(kubectl get roles,rolebindings -n vpn -l app.kubernetes.io/instance=sluice -o name)\""
kubectl delete namespace vpn legacy elsewhere --wait=false >/dev/null
# No kubelet here: once a pod is being deleted, do what the kubelet would do when its
# containers have exited (remove it for good).
kubelet_stand_in() {
  kubectl delete pods --all -n vpn --grace-period=0 --force >/dev/null 2>&1 || true
  kubectl delete pods --all -n elsewhere --grace-period=0 --force >/dev/null 2>&1 || true
  ! kubectl get namespace vpn legacy elsewhere 2>/dev/null | grep -q .
}
export -f kubelet_stand_in
check "uninstall: the gateways' namespaces delete (nothing of Sluice's blocks them)" \
  wait_until 60 bash -c kubelet_stand_in
check "uninstall: nothing else in the release namespace" bash -c \
  "test -z \"\$(kubectl get all,secrets,configmaps,roles,rolebindings,leases -n sluice-system -o name | grep -v 'configmap/kube-root-ca.crt')\""

log "real-apiserver tier: $(kube_version), $((SECONDS - T_START)) s"
summary
