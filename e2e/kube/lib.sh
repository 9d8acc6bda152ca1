# A real Kubernetes control plane for tests: etcd, kube-apiserver and
# kube-controller-manager on 127.0.0.1, with certificates made here. No kubelet
# and no scheduler: tests bind pods to fake Nodes and mark them Ready themselves.
# Source, don't run. See README.md in this folder.

KUBE_BIN=${SLUICE_KUBE_BIN:-${HOME:-/root}/.cache/sluice-kube/bin}
ETCD_PORT=${SLUICE_KUBE_ETCD_PORT:-23790}
API_PORT=${SLUICE_KUBE_API_PORT:-26443}
KUBE_PIDS=()

# kube_binaries_present: whether the three binaries are where the tier looks.
kube_binaries_present() {
  local b
  for b in etcd kube-apiserver kube-controller-manager; do
    [ -x "$KUBE_BIN/$b" ] || return 1
  done
}

# kube_version: the apiserver's version (e.g. v1.36.0).
kube_version() {
  "$KUBE_BIN/kube-apiserver" --version | awk '{print $2}'
}

# kube_certs DIR: a CA, the apiserver's serving certificate, an admin and a
# controller-manager client certificate, and the service-account key pair.
kube_certs() {
  local d=$1
  mkdir -p "$d"
  (
    cd "$d"
    openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=sluice-test-ca \
      -keyout ca.key -out ca.crt 2>/dev/null
    sign() {  # NAME SUBJECT [SAN]
      openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
      if [ -n "${3:-}" ]; then
        printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth,clientAuth\n' "$3" >"$1.ext"
      else
        printf 'extendedKeyUsage=clientAuth\n' >"$1.ext"
      fi
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$1.ext" -out "$1.crt" 2>/dev/null
    }
    sign apiserver /CN=kube-apiserver \
      "IP:127.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default.svc,IP:10.96.0.1"
    sign admin "/O=system:masters/CN=test-admin"
    # Every controller runs under this one identity (--use-service-account-credentials=false).
    sign controller-manager "/O=system:masters/CN=system:kube-controller-manager"
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
  )
}

# kubeconfig FILE USER_ARGS...: a kubeconfig for the test apiserver; USER_ARGS are
# `kubectl config set-credentials` arguments (client certificate or token).
kube_kubeconfig() {
  local f=$1; shift
  KUBECONFIG=$f kubectl config set-cluster test --server "https://127.0.0.1:$API_PORT" \
    --certificate-authority "$KUBE_DIR/pki/ca.crt" --embed-certs >/dev/null
  KUBECONFIG=$f kubectl config set-credentials user "$@" >/dev/null
  KUBECONFIG=$f kubectl config set-context test --cluster test --user user >/dev/null
  KUBECONFIG=$f kubectl config use-context test >/dev/null
}

# kube_start DIR: starts the control plane with its state under DIR and waits
# until the apiserver is ready; exports KUBECONFIG (admin).
kube_start() {
  KUBE_DIR=$1
  mkdir -p "$KUBE_DIR"
  kube_certs "$KUBE_DIR/pki"
  local p=$KUBE_DIR/pki
  "$KUBE_BIN/etcd" --data-dir "$KUBE_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$((ETCD_PORT + 1))" \
    --unsafe-no-fsync --log-level warn \
    >"$KUBE_DIR/etcd.log" 2>&1 &
  KUBE_PIDS+=($!)
  "$KUBE_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
    --endpoint-reconciler-type none --allow-privileged=true --profiling=false \
    --tls-cert-file "$p/apiserver.crt" --tls-private-key-file "$p/apiserver.key" \
    --client-ca-file "$p/ca.crt" \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$p/sa.pub" --service-account-signing-key-file "$p/sa.key" \
    --service-cluster-ip-range 10.96.0.0/16 \
    --authorization-mode RBAC \
    >"$KUBE_DIR/apiserver.log" 2>&1 &
  KUBE_PIDS+=($!)
  kube_kubeconfig "$KUBE_DIR/admin.kubeconfig" \
    --client-certificate "$p/admin.crt" --client-key "$p/admin.key" --embed-certs
  kube_kubeconfig "$KUBE_DIR/cm.kubeconfig" \
    --client-certificate "$p/controller-manager.crt" --client-key "$p/controller-manager.key" --embed-certs
  export KUBECONFIG=$KUBE_DIR/admin.kubeconfig
  local i
  for i in $(seq 120); do
    kubectl get --raw /readyz >/dev/null 2>&1 && break
    sleep 0.5
  done
  kubectl get --raw /readyz >/dev/null
  # No node lifecycle controller: the fake Nodes never send heartbeats, and it would
  # mark them (and their pods) not ready.
  "$KUBE_BIN/kube-controller-manager" --kubeconfig "$KUBE_DIR/cm.kubeconfig" \
    --authentication-kubeconfig "$KUBE_DIR/cm.kubeconfig" \
    --authorization-kubeconfig "$KUBE_DIR/cm.kubeconfig" \
    --controllers '*,-nodelifecycle,-nodeipam,-cloud-node-lifecycle' \
    --service-account-private-key-file "$p/sa.key" --root-ca-file "$p/ca.crt" \
    --use-service-account-credentials=false --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0 \
    >"$KUBE_DIR/controller-manager.log" 2>&1 &
  KUBE_PIDS+=($!)
  # The default namespace's ServiceAccount appears once the controllers run.
  for i in $(seq 120); do
    kubectl get serviceaccount default -n default >/dev/null 2>&1 && break
    sleep 0.5
  done
}

# kube_stop: stops the control plane, etcd last (state stays in KUBE_DIR).
kube_stop() {
  local i p
  for ((i = ${#KUBE_PIDS[@]} - 1; i >= 0; i--)); do
    p=${KUBE_PIDS[$i]}
    kill "$p" 2>/dev/null || true
    wait "$p" 2>/dev/null || true
  done
  KUBE_PIDS=()
}

# fake_node NAME EXTERNAL_IP: a Node object with addresses and a Ready condition.
fake_node() {
  kubectl apply -f - >/dev/null <<YAML
apiVersion: v1
kind: Node
metadata:
  name: $1
  labels: {kubernetes.io/hostname: $1, sluice.dev/edge: "true"}
YAML
  kubectl patch node "$1" --subresource=status --type=merge -p "{\"status\":{
    \"addresses\":[{\"type\":\"ExternalIP\",\"address\":\"$2\"},{\"type\":\"Hostname\",\"address\":\"$1\"}],
    \"conditions\":[{\"type\":\"Ready\",\"status\":\"True\",\"reason\":\"Test\",\"message\":\"fake node\",
      \"lastHeartbeatTime\":\"$(date -u +%FT%TZ)\",\"lastTransitionTime\":\"$(date -u +%FT%TZ)\"}]}}" >/dev/null
}

# bind_pod NAMESPACE POD NODE: what the scheduler would do (the binding subresource).
bind_pod() {
  kubectl create --raw "/api/v1/namespaces/$1/pods/$2/binding" -f - >/dev/null <<JSON
{"apiVersion":"v1","kind":"Binding","metadata":{"name":"$2"},"target":{"apiVersion":"v1","kind":"Node","name":"$3"}}
JSON
}

# pod_ready NAMESPACE POD: what the kubelet would report for a started, ready pod.
pod_ready() {
  local now; now=$(date -u +%FT%TZ)
  kubectl patch pod -n "$1" "$2" --subresource=status --type=merge -p "{\"status\":{
    \"phase\":\"Running\",\"hostIP\":\"192.0.2.1\",\"podIP\":\"192.0.2.1\",\"startTime\":\"$now\",
    \"conditions\":[
      {\"type\":\"PodScheduled\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
      {\"type\":\"Initialized\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
      {\"type\":\"ContainersReady\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"},
      {\"type\":\"Ready\",\"status\":\"True\",\"lastTransitionTime\":\"$now\"}]}}" >/dev/null
}

# wait_until SECONDS CMD...: polls CMD every half second until it succeeds.
wait_until() {
  local n=$(( $1 * 2 )); shift
  local i
  for i in $(seq "$n"); do
    "$@" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  return 1
}
