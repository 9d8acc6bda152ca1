#!/usr/bin/env python3
"""Checks for the Sluice Helm chart, driven by e2e/helm/check.sh.

  check_rendered.py render RENDERED.yaml RELEASE NAMESPACE CHART/values.yaml [OVERRIDE.yaml ...]
      Checks the output of `helm template` against what the values ask for (the
      chart's own values.yaml first, then the -f files in the order helm got them).
  check_rendered.py example EXAMPLE.yaml CRD.yaml [CRD.yaml ...]
      Checks a user-facing example manifest against the CRDs' structural schemas,
      and the autoscaler examples next to it (hpa.yaml, keda.yaml) against it.
  check_rendered.py chart CHART_DIR
      Checks Chart.yaml and NOTES.txt.

Every check prints one line, "PASS <what>" or "FAIL <what>: <why>"; check.sh counts
them. The exit status is 0 unless the script itself breaks.
"""

import copy
import os
import sys

import yaml

RESULTS = []


def check(what, problems):
    """Record one check; `problems` is a list of strings (empty = pass)."""
    if isinstance(problems, str):
        problems = [problems]
    problems = [p for p in problems if p]
    if problems:
        shown = "; ".join(problems[:6])
        if len(problems) > 6:
            shown += f"; ... ({len(problems) - 6} more)"
        print(f"FAIL {what}: {shown}")
    else:
        print(f"PASS {what}")
    RESULTS.append(not problems)


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


def deep_merge(base, over):
    out = copy.deepcopy(base)
    for k, v in (over or {}).items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = copy.deepcopy(v)
    return out


def fullname(values, release):
    """Mirror of sluice.fullname in _helpers.tpl."""
    if values.get("fullnameOverride"):
        return values["fullnameOverride"][:63].rstrip("-")
    name = (values.get("nameOverride") or "sluice")[:63].rstrip("-")
    if name in release:
        return release[:63].rstrip("-")
    return f"{release}-{name}"[:63].rstrip("-")


CLUSTER_SCOPED = {"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Namespace"}

SECURITY_CONTEXT = {
    "runAsNonRoot": True,
    "runAsUser": 65532,
    "readOnlyRootFilesystem": True,
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}

WRITE = ["create", "patch"]


def expected_namespaced_rules():
    """Rules on the gateways' namespaces (cluster-wide, or a Role per watchNamespaces entry)."""
    return [
        ("sluice.dev", "vpngateways", ["get", "list", "watch", "patch"], None),
        ("sluice.dev", "vpnusers", ["get", "list", "watch"], None),
        ("sluice.dev", "vpngateways/status", ["patch"], None),
        ("sluice.dev", "vpnusers/status", ["patch"], None),
        ("sluice.dev", "vpngateways/finalizers", ["update"], None),
        # spec.autoscaling: the built-in autoscaler writes spec.replicas through /scale.
        ("sluice.dev", "vpngateways/scale", ["patch"], None),
        ("apps", "deployments", ["list", "watch"] + WRITE, None),
        ("", "services", WRITE, None),
        ("", "serviceaccounts", WRITE, None),
        # get: one referenced Secret at a time; list/watch: the metadata-only watch.
        ("", "secrets", ["get", "list", "watch"] + WRITE, None),
        # patch: pod-deletion-cost annotations on data-plane pods.
        ("", "pods", ["list", "watch", "patch"], None),
        ("policy", "poddisruptionbudgets", WRITE, None),
        ("events.k8s.io", "events", ["create", "patch"], None),
    ]


def expected_cluster_rules(namespaced):
    nodes = [("", "nodes", ["list", "watch"], None)]
    return nodes if namespaced else nodes + expected_namespaced_rules()


def expected_role_rules(lease, ca, deployment):
    return [
        ("coordination.k8s.io", "leases", ["create"], None),
        ("", "secrets", ["create"], None),
        ("coordination.k8s.io", "leases", ["get", "update", "patch"], (lease,)),
        ("", "secrets", ["get", "patch"], (ca,)),
        ("", "pods", ["patch"], None),
        ("apps", "deployments", ["get"], (deployment,)),
    ]


def flatten_rules(rules):
    """One (group, resource, sorted verbs, resourceNames) tuple per group x resource."""
    out = []
    for r in rules or []:
        names = tuple(r["resourceNames"]) if r.get("resourceNames") else None
        for g in r.get("apiGroups", []):
            for res in r.get("resources", []):
                out.append((g, res, tuple(sorted(r.get("verbs", []))), names))
    return sorted(out, key=repr)


def norm_expected(rules):
    return sorted(((g, r, tuple(sorted(v)), n) for g, r, v, n in rules), key=repr)


def subset(small, big):
    return all(big.get(k) == v for k, v in (small or {}).items())


# --------------------------------------------------------------------- render


def check_render(rendered, release, namespace, values_files):
    values = {}
    for vf in values_files:
        with open(vf, encoding="utf-8") as f:
            values = deep_merge(values, yaml.safe_load(f) or {})
    fn = fullname(values, release)
    with open(os.path.join(os.path.dirname(values_files[0]), "Chart.yaml"), encoding="utf-8") as f:
        app_version = str(yaml.safe_load(f)["appVersion"])
    tag = str(values["image"].get("tag") or app_version)
    image = f'{values["image"]["repository"]}:{tag}'
    pull = values["image"]["pullPolicy"]
    ca = values["tls"].get("caSecret") or f"{fn}-ca"
    lease = f"{fn}-leader"
    sa_name = values["serviceAccount"].get("name") or (fn if values["serviceAccount"]["create"] else "default")
    replicas = int(values["replicas"])
    sm = values["metrics"]["serviceMonitor"]
    tag_line = f"[{os.path.basename(values_files[-1])}]"

    docs = load_all(rendered)
    check(f"{tag_line} rendered {len(docs)} documents", [] if docs else ["nothing rendered"])

    probs = []
    for i, d in enumerate(docs):
        if not isinstance(d, dict):
            probs.append(f"document {i} is not a mapping")
            continue
        for key in ("apiVersion", "kind"):
            if not isinstance(d.get(key), str) or not d.get(key):
                probs.append(f"document {i} ({d.get('kind')}) has no {key}")
        meta = d.get("metadata") or {}
        if not isinstance(meta.get("name"), str) or not meta.get("name"):
            probs.append(f"document {i} ({d.get('kind')}) has no metadata.name")
    check(f"{tag_line} every document has apiVersion, kind, metadata.name", probs)
    docs = [d for d in docs if isinstance(d, dict)]

    seen, probs = set(), []
    for d in docs:
        key = (d.get("kind"), d["metadata"].get("namespace"), d["metadata"].get("name"))
        if key in seen:
            probs.append(f"duplicate {key}")
        seen.add(key)
        name = d["metadata"].get("name", "")
        if len(name) > 63:
            probs.append(f"{d['kind']}/{name} name longer than 63")
        if d.get("kind") in CLUSTER_SCOPED:
            if "namespace" in d["metadata"]:
                probs.append(f"cluster-scoped {d['kind']}/{name} has a namespace")
        elif d["metadata"].get("namespace") != namespace and not (
                d.get("kind") in ("Role", "RoleBinding") and name.endswith("-operator-gateways")
                and d["metadata"].get("namespace") in (values.get("watchNamespaces") or [])):
            probs.append(f"{d['kind']}/{name} is not in namespace {namespace}")
        labels = d["metadata"].get("labels") or {}
        if labels.get("app.kubernetes.io/part-of") != "sluice":
            probs.append(f"{d['kind']}/{name} lacks app.kubernetes.io/part-of=sluice")
    check(f"{tag_line} names unique, namespaces right, common labels", probs)

    def by_kind(kind):
        return [d for d in docs if d.get("kind") == kind]

    def one(kind, name=None):
        found = [d for d in by_kind(kind) if name is None or d["metadata"]["name"] == name]
        return found[0] if len(found) == 1 else None

    # RBAC
    probs = []
    for d in by_kind("ClusterRole") + by_kind("Role"):
        for r in d.get("rules") or []:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                if any("*" in str(x) for x in r.get(field) or []):
                    probs.append(f"{d['kind']}/{d['metadata']['name']} {field} uses *")
    check(f"{tag_line} no RBAC rule uses a wildcard", probs)

    watch_ns = values.get("watchNamespaces") or []
    cr = by_kind("ClusterRole")
    roles = by_kind("Role")
    role = [r for r in roles if r["metadata"].get("namespace") == namespace and r["metadata"]["name"] == f"{fn}-operator"]
    gw_roles = [r for r in roles if r not in role]
    probs = []
    want = norm_expected(expected_cluster_rules(bool(watch_ns)))
    if len(cr) != 1:
        probs.append(f"{len(cr)} ClusterRoles")
    elif flatten_rules(cr[0]["rules"]) != want:
        got = set(flatten_rules(cr[0]["rules"]))
        probs.append(f"extra {sorted(got - set(want))} missing {sorted(set(want) - got)}")
    mode = f"nodes only (watchNamespaces {watch_ns})" if watch_ns else "cluster-wide"
    check(f"{tag_line} ClusterRole grants exactly the operator's permissions ({mode})", probs)

    probs = []
    want = norm_expected(expected_role_rules(lease, ca, f"{fn}-operator"))
    if len(role) != 1:
        probs.append(f"{len(role)} release-namespace Roles")
    elif flatten_rules(role[0]["rules"]) != want:
        got = set(flatten_rules(role[0]["rules"]))
        probs.append(f"extra {sorted(got - set(want))} missing {sorted(set(want) - got)}")
    check(f"{tag_line} release Role grants the Lease ({lease}), the CA Secret ({ca}), own pod and Deployment only", probs)

    probs = []
    if sorted(r["metadata"].get("namespace") for r in gw_roles) != sorted(watch_ns):
        probs.append(f"gateway Roles in {sorted(r['metadata'].get('namespace') for r in gw_roles)} != {sorted(watch_ns)}")
    for r in gw_roles:
        if r["metadata"]["name"] != f"{fn}-operator-gateways":
            probs.append(f"Role {r['metadata']['name']}")
        if flatten_rules(r["rules"]) != norm_expected(expected_namespaced_rules()):
            probs.append(f"Role in {r['metadata'].get('namespace')} rules differ")
    check(f"{tag_line} one gateway Role per watched namespace ({len(watch_ns)})", probs)

    probs = []
    bindings = by_kind("RoleBinding")
    pairs = [("ClusterRoleBinding", "ClusterRole", cr, by_kind("ClusterRoleBinding"))]
    pairs.append(("RoleBinding", "Role", role,
                  [b for b in bindings if b["metadata"].get("namespace") == namespace and b["metadata"]["name"] == f"{fn}-operator"]))
    for gr in gw_roles:
        ns = gr["metadata"].get("namespace")
        pairs.append((f"RoleBinding in {ns}", "Role", [gr],
                      [b for b in bindings if b["metadata"].get("namespace") == ns and b["metadata"]["name"] == gr["metadata"]["name"]]))
    if len(bindings) != 1 + len(gw_roles):
        probs.append(f"{len(bindings)} RoleBindings for {1 + len(gw_roles)} Roles")
    for kind, ref_kind, objs, bs in pairs:
        if len(bs) != 1:
            probs.append(f"{len(bs)} {kind}s")
            continue
        b = bs[0]
        if b["roleRef"].get("kind") != ref_kind or not objs or b["roleRef"].get("name") != objs[0]["metadata"]["name"]:
            probs.append(f"{kind} roleRef {b['roleRef']} does not name the rendered {ref_kind}")
        subj = b.get("subjects") or []
        if subj != [{"kind": "ServiceAccount", "name": sa_name, "namespace": namespace}]:
            probs.append(f"{kind} subjects {subj} != ServiceAccount {namespace}/{sa_name}")
    sas = by_kind("ServiceAccount")
    if values["serviceAccount"]["create"]:
        if [s["metadata"]["name"] for s in sas] != [sa_name]:
            probs.append(f"ServiceAccounts {[s['metadata']['name'] for s in sas]} != [{sa_name}]")
        elif (sas[0]["metadata"].get("annotations") or {}) != (values["serviceAccount"].get("annotations") or {}):
            probs.append("ServiceAccount annotations differ from the values")
    elif sas:
        probs.append("serviceAccount.create=false but a ServiceAccount was rendered")
    check(f"{tag_line} bindings name the roles and ServiceAccount {sa_name}", probs)

    # Deployment
    deps = by_kind("Deployment")
    dep = deps[0] if len(deps) == 1 else None
    check(f"{tag_line} exactly one operator Deployment", [] if dep else [f"{len(deps)} Deployments"])
    if dep is None:
        return
    pod = dep["spec"]["template"]
    pod_labels = pod["metadata"].get("labels") or {}
    want_labels = {
        "app.kubernetes.io/name": "sluice-operator",
        "app.kubernetes.io/instance": release,
        "app.kubernetes.io/part-of": "sluice",
    }
    probs = []
    for where, labels in (("metadata.labels", dep["metadata"].get("labels") or {}), ("pod labels", pod_labels)):
        if not subset(want_labels, labels):
            probs.append(f"{where} {labels} lack {want_labels}")
    sel = dep["spec"]["selector"].get("matchLabels") or {}
    if not sel or not subset(sel, pod_labels):
        probs.append(f"selector {sel} does not match the pod labels")
    if "sluice.dev/leader" in sel or "sluice.dev/leader" in pod_labels:
        probs.append("the leader label must be set by the operator, not the chart")
    if dep["spec"].get("replicas") != replicas:
        probs.append(f"replicas {dep['spec'].get('replicas')} != {replicas}")
    check(f"{tag_line} Deployment labels, selector, replicas={replicas}", probs)

    containers = pod["spec"].get("containers") or []
    c = containers[0] if len(containers) == 1 else {}
    probs = [] if len(containers) == 1 else [f"{len(containers)} containers"]
    sc = c.get("securityContext") or {}
    for k, v in SECURITY_CONTEXT.items():
        if sc.get(k) != v:
            probs.append(f"securityContext.{k} = {sc.get(k)!r}, want {v!r}")
    if (sc.get("capabilities") or {}).get("add"):
        probs.append("capabilities.add must be empty")
    if sc.get("privileged"):
        probs.append("privileged")
    psc = pod["spec"].get("securityContext") or {}
    if psc.get("runAsNonRoot") is not True or psc.get("seccompProfile", {}).get("type") != "RuntimeDefault":
        probs.append(f"pod securityContext {psc} lacks runAsNonRoot / seccomp RuntimeDefault")
    for k in ("hostNetwork", "hostPID", "hostIPC"):
        if pod["spec"].get(k):
            probs.append(f"operator pod uses {k}")
    check(f"{tag_line} operator container security context", probs)

    want_args = [
        "run",
        "--namespace=$(POD_NAMESPACE)",
        "--pod-name=$(POD_NAME)",
        "--grpc-listen=0.0.0.0:50051",
        "--http-listen=0.0.0.0:8080",
        f"--grpc-service={fn}-grpc",
        "--grpc-service-port=50051",
        f"--owner-deployment={fn}-operator",
        f"--lease-name={lease}",
        f"--ca-secret={ca}",
        f"--ca-lifetime={values['tls']['caLifetime']}",
        f"--ca-rotate-before={values['tls']['caRotateBefore']}",
        f"--ca-propagation={values['tls']['caPropagation']}",
        f"--watch-namespaces={','.join(values.get('watchNamespaces') or [])}",
        f"--dataplane-image={image}",
        f"--dataplane-image-pull-policy={pull}",
        f"--log-format={values.get('logFormat', 'text')}",
    ]
    probs = []
    if c.get("command") != ["sluice-operator"]:
        probs.append(f"command {c.get('command')}")
    if c.get("args") != want_args:
        probs.append(f"args {c.get('args')} != {want_args}")
    if c.get("image") != image:
        probs.append(f"image {c.get('image')} != {image}")
    if c.get("imagePullPolicy") != pull:
        probs.append(f"imagePullPolicy {c.get('imagePullPolicy')} != {pull}")
    env = {e["name"]: e for e in c.get("env") or []}
    for name, field in (("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")):
        got = ((env.get(name) or {}).get("valueFrom") or {}).get("fieldRef", {}).get("fieldPath")
        if got != field:
            probs.append(f"env {name} fieldPath {got} != {field}")
    if (env.get("RUST_LOG") or {}).get("value") != values["logLevel"]:
        probs.append(f"RUST_LOG {env.get('RUST_LOG')} != {values['logLevel']}")
    tracing = values.get("tracing") or {}
    want_otel = dict(tracing.get("env") or {})
    if tracing.get("otlpEndpoint"):
        want_otel["OTEL_EXPORTER_OTLP_ENDPOINT"] = tracing["otlpEndpoint"]
    got_otel = {k: v.get("value") for k, v in env.items() if k.startswith("OTEL_")}
    if got_otel != want_otel:
        probs.append(f"OTEL env {got_otel} != {want_otel}")
    check(f"{tag_line} operator command, args and env", probs)

    probs = []
    ports = {p["name"]: p for p in c.get("ports") or []}
    if (ports.get("grpc") or {}).get("containerPort") != 50051:
        probs.append("no grpc port 50051")
    if (ports.get("http") or {}).get("containerPort") != 8080:
        probs.append("no http port 8080")
    for probe, path in (("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
        hg = (c.get(probe) or {}).get("httpGet") or {}
        if hg.get("path") != path or hg.get("port") not in ("http", 8080):
            probs.append(f"{probe} {hg} != GET {path} on http")
    check(f"{tag_line} ports grpc/50051, http/8080, /healthz and /readyz probes", probs)

    probs = []
    spec = pod["spec"]
    if spec.get("serviceAccountName") != sa_name:
        probs.append(f"serviceAccountName {spec.get('serviceAccountName')} != {sa_name}")
    for key, vkey in (("nodeSelector", "nodeSelector"), ("tolerations", "tolerations"),
                      ("imagePullSecrets", "imagePullSecrets")):
        want = values.get(vkey) or None
        if (spec.get(key) or None) != want:
            probs.append(f"{key} {spec.get(key)} != {want}")
    if (spec.get("priorityClassName") or "") != (values.get("priorityClassName") or ""):
        probs.append(f"priorityClassName {spec.get('priorityClassName')}")
    if (pod["metadata"].get("annotations") or {}) != (values.get("podAnnotations") or {}):
        probs.append(f"pod annotations {pod['metadata'].get('annotations')} != {values.get('podAnnotations')}")
    if (c.get("resources") or {}) != (values.get("resources") or {}):
        probs.append("resources differ from the values")
    if values.get("affinity"):
        if spec.get("affinity") != values["affinity"]:
            probs.append("affinity does not equal the values' affinity")
    else:
        terms = (((spec.get("affinity") or {}).get("podAntiAffinity") or {})
                 .get("preferredDuringSchedulingIgnoredDuringExecution") or [])
        ok = any(
            t.get("podAffinityTerm", {}).get("topologyKey") == "kubernetes.io/hostname"
            and subset(t["podAffinityTerm"].get("labelSelector", {}).get("matchLabels"), pod_labels)
            and t["podAffinityTerm"].get("labelSelector", {}).get("matchLabels")
            for t in terms
        )
        if not ok:
            probs.append("no default preferred pod anti-affinity on kubernetes.io/hostname")
    check(f"{tag_line} pod placement, account and values passthrough", probs)

    # Services
    svcs = {s["metadata"]["name"]: s for s in by_kind("Service")}
    grpc = svcs.get(f"{fn}-grpc")
    metrics = svcs.get(f"{fn}-metrics")
    probs = []
    if grpc is None:
        probs.append(f"no Service {fn}-grpc")
    else:
        s = grpc["spec"]
        if s.get("selector", {}).get("sluice.dev/leader") != "true":
            probs.append(f"selector {s.get('selector')} lacks sluice.dev/leader: \"true\"")
        rest = {k: v for k, v in (s.get("selector") or {}).items() if k != "sluice.dev/leader"}
        if not rest or not subset(rest, pod_labels) or not subset(sel, rest):
            probs.append(f"selector {s.get('selector')} does not select the operator pods")
        if s.get("type", "ClusterIP") != "ClusterIP":
            probs.append(f"type {s.get('type')}")
        p = [x for x in s.get("ports") or [] if x.get("name") == "grpc"]
        if not p or p[0].get("port") != 50051 or p[0].get("targetPort") not in ("grpc", 50051):
            probs.append(f"ports {s.get('ports')} lack grpc 50051")
    check(f"{tag_line} gRPC Service selects the leader operator pod only", probs)

    probs = []
    if metrics is None:
        probs.append(f"no Service {fn}-metrics")
    else:
        s = metrics["spec"]
        msel = s.get("selector") or {}
        if "sluice.dev/leader" in msel:
            probs.append("metrics Service must select every replica")
        if not msel or not subset(msel, pod_labels) or not subset(sel, msel):
            probs.append(f"selector {msel} does not select the operator pods")
        p = [x for x in s.get("ports") or [] if x.get("name") == "http-metrics"]
        if not p or p[0].get("port") != 8080 or p[0].get("targetPort") not in ("http", 8080):
            probs.append(f"ports {s.get('ports')} lack http-metrics 8080")
    if set(svcs) != {f"{fn}-grpc", f"{fn}-metrics"}:
        probs.append(f"unexpected Services {sorted(svcs)}")
    check(f"{tag_line} metrics Service selects every operator pod", probs)

    # PDB
    pdbs = by_kind("PodDisruptionBudget")
    probs = []
    if replicas > 1:
        if len(pdbs) != 1:
            probs.append(f"{len(pdbs)} PodDisruptionBudgets with replicas={replicas}")
        else:
            ps = pdbs[0]["spec"]
            if ps.get("minAvailable") != 1 or ps.get("selector", {}).get("matchLabels") != sel:
                probs.append(f"PDB spec {ps}")
    elif pdbs:
        probs.append(f"PodDisruptionBudget rendered with replicas={replicas}")
    check(f"{tag_line} PodDisruptionBudget only when replicas > 1", probs)

    # ServiceMonitors
    sms = {d["metadata"]["name"]: d for d in by_kind("ServiceMonitor")}
    probs = []
    if not sm.get("enabled"):
        if sms:
            probs.append(f"ServiceMonitors rendered while disabled: {sorted(sms)}")
    else:
        op = sms.get(f"{fn}-operator")
        dp = sms.get(f"{fn}-dataplane")
        if len(sms) != 2 or op is None or dp is None:
            probs.append(f"ServiceMonitors {sorted(sms)}")
        else:
            for d in (op, dp):
                if d.get("apiVersion") != "monitoring.coreos.com/v1":
                    probs.append(f"{d['metadata']['name']} apiVersion {d.get('apiVersion')}")
                if not subset(sm.get("labels") or {}, d["metadata"].get("labels") or {}):
                    probs.append(f"{d['metadata']['name']} lacks the labels from the values")
                eps = d["spec"].get("endpoints") or []
                if not eps or any(e.get("interval") != sm.get("interval") for e in eps):
                    probs.append(f"{d['metadata']['name']} endpoints {eps} lack interval {sm.get('interval')}")
            osel = op["spec"]["selector"].get("matchLabels") or {}
            if metrics is None or not subset(osel, metrics["metadata"].get("labels") or {}):
                probs.append("operator ServiceMonitor does not select the metrics Service")
            if grpc is not None and subset(osel, grpc["metadata"].get("labels") or {}):
                probs.append("operator ServiceMonitor also selects the gRPC Service")
            if op["spec"].get("namespaceSelector") != {"matchNames": [namespace]}:
                probs.append(f"operator ServiceMonitor namespaceSelector {op['spec'].get('namespaceSelector')}")
            if [e.get("port") for e in op["spec"]["endpoints"]] != ["http-metrics"]:
                probs.append("operator ServiceMonitor port is not http-metrics")
            if dp["spec"].get("namespaceSelector") != {"any": True}:
                probs.append(f"dataplane ServiceMonitor namespaceSelector {dp['spec'].get('namespaceSelector')}")
            if dp["spec"]["selector"].get("matchLabels") != {"app.kubernetes.io/name": "sluice-dataplane"}:
                probs.append(f"dataplane ServiceMonitor selector {dp['spec']['selector']}")
            if [e.get("port") for e in dp["spec"]["endpoints"]] != ["metrics"]:
                probs.append("dataplane ServiceMonitor port is not metrics")
    state = "enabled" if sm.get("enabled") else "disabled"
    check(f"{tag_line} ServiceMonitors match metrics.serviceMonitor ({state})", probs)

    check_network_policy(by_kind("NetworkPolicy"), values, fn, dep, tag_line)

    known = {"Deployment", "Service", "ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role",
             "RoleBinding", "PodDisruptionBudget", "ServiceMonitor", "CustomResourceDefinition",
             "NetworkPolicy"}
    extra = sorted({d["kind"] for d in docs} - known)
    check(f"{tag_line} no unexpected kinds", [f"unexpected kinds {extra}"] if extra else [])


def check_network_policy(nps, values, fn, dep, tag_line):
    """Only the gRPC port (from the node CIDRs) and the HTTP port (from the metrics peers)."""
    np_values = values.get("networkPolicy") or {}
    probs = []
    if not np_values.get("enabled"):
        if nps:
            probs.append("NetworkPolicy rendered while disabled")
        check(f"{tag_line} NetworkPolicy matches networkPolicy (disabled)", probs)
        return
    if len(nps) != 1 or nps[0]["metadata"]["name"] != f"{fn}-operator":
        check(f"{tag_line} NetworkPolicy matches networkPolicy (enabled)", [f"{len(nps)} NetworkPolicies"])
        return
    spec = nps[0]["spec"]
    pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    sel = (spec.get("podSelector") or {}).get("matchLabels") or {}
    if not sel or not subset(sel, pod_labels):
        probs.append(f"podSelector {sel} does not select the operator pods")
    if spec.get("policyTypes") != ["Ingress"]:
        probs.append(f"policyTypes {spec.get('policyTypes')}")
    rules = spec.get("ingress") or []
    by_port = {}
    for r in rules:
        ports = r.get("ports") or []
        if len(ports) != 1 or ports[0].get("protocol") != "TCP":
            probs.append(f"rule ports {ports}")
            continue
        by_port[ports[0].get("port")] = r.get("from")
    if sorted(by_port) != [8080, 50051]:
        probs.append(f"ports {sorted(by_port)} != [8080, 50051]")
    cidrs = (np_values.get("grpc") or {}).get("nodeCidrs") or []
    want_grpc = [{"ipBlock": {"cidr": c}} for c in cidrs] or None
    if by_port.get(50051) != want_grpc:
        probs.append(f"gRPC sources {by_port.get(50051)} != {want_grpc}")
    want_metrics = (np_values.get("metrics") or {}).get("from") or None
    if by_port.get(8080) != want_metrics:
        probs.append(f"metrics sources {by_port.get(8080)} != {want_metrics}")
    check(f"{tag_line} NetworkPolicy admits 50051 from {cidrs or 'any'} and 8080 only", probs)


# -------------------------------------------------------------------- example


def type_ok(value, typ):
    if typ == "object":
        return isinstance(value, dict)
    if typ == "array":
        return isinstance(value, list)
    if typ == "string":
        return isinstance(value, str)
    if typ == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if typ == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if typ == "boolean":
        return isinstance(value, bool)
    return True


def validate(value, schema, path, probs):
    """A small structural-schema validator: the parts of OpenAPI v3 our CRDs use."""
    if value is None:
        if not schema.get("nullable"):
            probs.append(f"{path} is null")
        return
    typ = schema.get("type")
    if typ and not type_ok(value, typ):
        probs.append(f"{path} is {type(value).__name__}, want {typ}")
        return
    if "enum" in schema and value not in schema["enum"]:
        probs.append(f"{path} = {value!r} not in {schema['enum']}")
    if typ in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            probs.append(f"{path} = {value} < {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            probs.append(f"{path} = {value} > {schema['maximum']}")
    if typ == "string":
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            probs.append(f"{path} longer than {schema['maxLength']}")
        if "minLength" in schema and len(value) < schema["minLength"]:
            probs.append(f"{path} shorter than {schema['minLength']}")
    if typ == "array":
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            probs.append(f"{path} has more than {schema['maxItems']} items")
        if "minItems" in schema and len(value) < schema["minItems"]:
            probs.append(f"{path} has fewer than {schema['minItems']} items")
        for i, item in enumerate(value):
            validate(item, schema.get("items") or {}, f"{path}[{i}]", probs)
    if typ == "object":
        props = schema.get("properties")
        for req in schema.get("required") or []:
            if req not in value:
                probs.append(f"{path}.{req} is required")
        if props is not None and not schema.get("x-kubernetes-preserve-unknown-fields"):
            for k, v in value.items():
                if k not in props:
                    probs.append(f"{path}.{k} is not a known field")
                else:
                    validate(v, props[k], f"{path}.{k}", probs)
        elif isinstance(schema.get("additionalProperties"), dict):
            for k, v in value.items():
                validate(v, schema["additionalProperties"], f"{path}.{k}", probs)


def check_example(example, crd_files):
    schemas = {}
    for path in crd_files:
        for crd in load_all(path):
            group = crd["spec"]["group"]
            for ver in crd["spec"]["versions"]:
                schemas[(f"{group}/{ver['name']}", crd["spec"]["names"]["kind"])] = ver["schema"]["openAPIV3Schema"]
    docs = load_all(example)
    name = os.path.basename(example)
    probs = []
    for d in docs:
        for key in ("apiVersion", "kind"):
            if not d.get(key):
                probs.append(f"a document has no {key}")
        if not (d.get("metadata") or {}).get("name"):
            probs.append(f"{d.get('kind')} has no metadata.name")
    check(f"[{name}] every document has apiVersion, kind, metadata.name", probs)

    probs = []
    count = 0
    for d in docs:
        key = (d.get("apiVersion"), d.get("kind"))
        if key not in schemas:
            continue
        count += 1
        top = {k: v for k, v in d.items() if k not in ("apiVersion", "kind", "metadata")}
        if "status" in top:
            probs.append(f"{d['kind']}/{d['metadata']['name']} sets status")
        validate(top, schemas[key], f"{d['kind']}/{d['metadata']['name']}", probs)
    if count == 0:
        probs.append("no VpnGateway/VpnUser documents")
    check(f"[{name}] {count} sluice.dev objects validate against the CRD schemas", probs)

    probs = []
    namespaces = {d["metadata"]["name"] for d in docs if d["kind"] == "Namespace" and d["apiVersion"] == "v1"}
    objs = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
    gateways = [d for d in docs if d["kind"] == "VpnGateway"]
    users = [d for d in docs if d["kind"] == "VpnUser"]
    for d in docs:
        if d["kind"] == "Namespace":
            continue
        ns = d["metadata"].get("namespace")
        if ns not in namespaces:
            probs.append(f"{d['kind']}/{d['metadata']['name']} namespace {ns!r} is not created in the file")
    for u in users:
        ns = u["metadata"]["namespace"]
        gw = u["spec"]["gatewayRef"]["name"]
        if ("VpnGateway", ns, gw) not in objs:
            probs.append(f"VpnUser/{u['metadata']['name']} names a missing gateway {gw}")
        ref = u["spec"]["passwordSecretRef"]
        sec = objs.get(("Secret", ns, ref["name"]))
        key = ref.get("key", "password")
        if sec is None:
            probs.append(f"VpnUser/{u['metadata']['name']} names a missing Secret {ref['name']}")
        elif key not in (sec.get("stringData") or {}) and key not in (sec.get("data") or {}):
            probs.append(f"Secret/{ref['name']} has no key {key}")
    check(f"[{name}] users reference gateways and password Secrets in the file", probs)

    probs = []
    if [g["metadata"]["name"] for g in gateways] != ["office"]:
        probs.append(f"gateways {[g['metadata']['name'] for g in gateways]} != [office]")
    elif gateways[0]["spec"].get("replicas") != 2:
        probs.append(f"office replicas {gateways[0]['spec'].get('replicas')} != 2")
    if sorted(u["metadata"]["name"] for u in users) != ["alice", "bob"]:
        probs.append(f"users {[u['metadata']['name'] for u in users]}")
    if namespaces != {"vpn"}:
        probs.append(f"namespaces {sorted(namespaces)} != [vpn]")
    check(f"[{name}] namespace vpn, gateway office (replicas 2), users alice and bob", probs)

    check_scalers(os.path.dirname(example), crd_files, gateways)


# The HPA and KEDA alternatives to spec.autoscaling: each targets the scale subresource of
# a gateway of the main example, on the data plane's session gauge.
SCALERS = {
    "hpa.yaml": ("autoscaling/v2", "HorizontalPodAutoscaler"),
    "keda.yaml": ("keda.sh/v1alpha1", "ScaledObject"),
}


def check_scalers(directory, crd_files, gateways):
    scalable = set()
    for path in crd_files:
        for crd in load_all(path):
            group = crd["spec"]["group"]
            for ver in crd["spec"]["versions"]:
                if (ver.get("subresources") or {}).get("scale"):
                    scalable.add((f"{group}/{ver['name']}", crd["spec"]["names"]["kind"]))
    for file, (api_version, kind) in SCALERS.items():
        path = os.path.join(directory, file)
        probs = []
        if not os.path.exists(path):
            check(f"[{file}] exists", [f"{path} is missing"])
            continue
        docs = load_all(path)
        if len(docs) != 1:
            probs.append(f"{len(docs)} documents, want 1")
        d = docs[0] if docs else {}
        if (d.get("apiVersion"), d.get("kind")) != (api_version, kind):
            probs.append(f"{d.get('apiVersion')}/{d.get('kind')}, want {api_version} {kind}")
        spec = d.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        if (ref.get("apiVersion"), ref.get("kind")) not in scalable:
            probs.append(f"scaleTargetRef {ref} is no CRD with a scale subresource")
        ns = (d.get("metadata") or {}).get("namespace")
        target = [g for g in gateways
                  if g["metadata"]["name"] == ref.get("name") and g["metadata"].get("namespace") == ns]
        if not target:
            probs.append(f"scaleTargetRef names no VpnGateway {ns}/{ref.get('name')} of the example")
        elif "autoscaling" in (target[0].get("spec") or {}):
            probs.append("the target also sets spec.autoscaling (both would write replicas)")
        if kind == "HorizontalPodAutoscaler":
            names = [((m.get("pods") or {}).get("metric") or {}).get("name") for m in spec.get("metrics") or []]
            if "sluice_sessions_active" not in names:
                probs.append(f"metrics {names} do not use sluice_sessions_active")
            if not (spec.get("minReplicas") or 0) <= (spec.get("maxReplicas") or 0):
                probs.append("minReplicas > maxReplicas")
        else:
            triggers = spec.get("triggers") or []
            queries = [(t.get("metadata") or {}).get("query", "") for t in triggers if t.get("type") == "prometheus"]
            if not any(q.replace(" ", "").startswith("sum(sluice_sessions_active") for q in queries):
                probs.append(f"no prometheus trigger summing sluice_sessions_active: {queries}")
            if not all((t.get("metadata") or {}).get("threshold") for t in triggers):
                probs.append("a trigger without a threshold")
        check(f"[{file}] {kind} scales {ns}/{ref.get('name')} through its scale subresource", probs)


# ---------------------------------------------------------------------- chart


def check_chart(chart_dir):
    with open(os.path.join(chart_dir, "Chart.yaml"), encoding="utf-8") as f:
        chart = yaml.safe_load(f)
    want = {"apiVersion": "v2", "name": "sluice", "version": "0.1.0", "appVersion": "0.1.0",
            "kubeVersion": ">=1.31.0-0"}
    probs = [f"{k} = {chart.get(k)!r}, want {v!r}" for k, v in want.items() if chart.get(k) != v]
    if not chart.get("description"):
        probs.append("no description")
    check("Chart.yaml metadata", probs)

    with open(os.path.join(chart_dir, "templates", "NOTES.txt"), encoding="utf-8") as f:
        notes = f.read()
    probs = [f"NOTES.txt does not mention {s!r}" for s in
             ("examples/kubernetes.yaml", "kubectl get vgw", "kubectl get vuser", "1723", "47", "hostNetwork")
             if s not in notes]
    check("NOTES.txt points to the example, kubectl get, firewall", probs)


def main(argv):
    if len(argv) >= 6 and argv[1] == "render":
        check_render(argv[2], argv[3], argv[4], argv[5:])
    elif len(argv) >= 4 and argv[1] == "example":
        check_example(argv[2], argv[3:])
    elif len(argv) == 3 and argv[1] == "chart":
        check_chart(argv[2])
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
