{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "sluice.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Prefix of every resource name: fullnameOverride if given, else the release name
when it already contains the chart name, else "<release>-<chart>".
*/}}
{{- define "sluice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "sluice.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
"name-version" for the helm.sh/chart label.
*/}}
{{- define "sluice.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Labels that select the operator pods. They never change across upgrades
(Deployment selectors are immutable).
*/}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: sluice-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/*
Labels on every object the chart creates.
*/}}
{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "sluice.chart" . }}
{{- end -}}

{{/*
Labels on the CRDs (not the operator's selector labels: CRDs are not part of it).
*/}}
{{- define "sluice.crdLabels" -}}
app.kubernetes.io/part-of: sluice
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ include "sluice.chart" . }}
{{- end -}}

{{/*
The operator's ServiceAccount name.
*/}}
{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "sluice.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/*
The image (repository:tag) of both the operator and the data plane.
*/}}
{{- define "sluice.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion | toString) -}}
{{- end -}}

{{/*
Names shared by several templates.
*/}}
{{- define "sluice.grpcService" -}}
{{- printf "%s-grpc" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.metricsService" -}}
{{- printf "%s-metrics" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.leaseName" -}}
{{- printf "%s-leader" (include "sluice.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "sluice.caSecret" -}}
{{- .Values.tls.caSecret | default (printf "%s-ca" (include "sluice.fullname" .)) -}}
{{- end -}}

{{/*
Rules on the objects of the namespaces where gateways live: cluster-wide in the
ClusterRole when watchNamespaces is empty, else in a Role per listed namespace.
*/}}
{{- define "sluice.namespacedRules" -}}
# Reconcile the custom resources; patch removes the finalizer of earlier versions.
- apiGroups: ["sluice.dev"]
  resources: ["vpngateways"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["sluice.dev"]
  resources: ["vpnusers"]
  verbs: ["get", "list", "watch"]
# Observed state (replicas, endpoints, sessions, conditions) in status.
- apiGroups: ["sluice.dev"]
  resources: ["vpngateways/status", "vpnusers/status"]
  verbs: ["patch"]
# Owner references with blockOwnerDeletion: true need update on
# vpngateways/finalizers where OwnerReferencesPermissionEnforcement is on.
- apiGroups: ["sluice.dev"]
  resources: ["vpngateways/finalizers"]
  verbs: ["update"]
# spec.autoscaling: the built-in autoscaler writes replicas through /scale.
- apiGroups: ["sluice.dev"]
  resources: ["vpngateways/scale"]
  verbs: ["patch"]
# The data-plane Deployment of each gateway (server-side apply; watched for status).
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch", "create", "patch"]
# Per-gateway metrics Service and the data-plane pods' ServiceAccount.
- apiGroups: [""]
  resources: ["services", "serviceaccounts"]
  verbs: ["create", "patch"]
# Secrets: a metadata-only watch (list, watch) to see referenced Secrets change,
# get of each Secret a gateway or user references, and the per-gateway agent TLS
# Secret (create, patch). RBAC cannot tell a metadata-only list from a full one.
- apiGroups: [""]
  resources: ["secrets"]
  verbs: ["get", "list", "watch", "create", "patch"]
# Data-plane pods (readiness, node) for status; patch: their pod-deletion-cost.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch"]
# One PodDisruptionBudget per gateway.
- apiGroups: ["policy"]
  resources: ["poddisruptionbudgets"]
  verbs: ["create", "patch"]
# Events about reconciliation, configuration errors and user sessions.
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- end -}}
