{{- define "schemagate.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "schemagate.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "schemagate.labels" -}}
{{ include "schemagate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "schemagate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "schemagate.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "schemagate.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{/* Watched namespaces, one per line; empty in cluster-wide mode. */}}
{{- define "schemagate.namespaces" -}}
{{- if not .Values.watch.allNamespaces -}}
{{- $ns := .Values.watch.namespaces | default (list .Release.Namespace) -}}
{{- range $ns | uniq }}
{{ . }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Namespaces that get the migration ServiceAccount, one per line. */}}
{{- define "schemagate.migrationNamespaces" -}}
{{- if .Values.migrationServiceAccount.namespaces -}}
{{- range .Values.migrationServiceAccount.namespaces | uniq }}
{{ . }}
{{- end -}}
{{- else -}}
{{- include "schemagate.namespaces" . -}}
{{- end -}}
{{- end -}}

{{/* What the operator may do, wherever it watches. docs/operator.md lists the same. */}}
{{- define "schemagate.rules" -}}
- apiGroups: [schemagate.io]
  resources: [schemamigrations]
  verbs: [get, list, watch]
- apiGroups: [schemagate.io]
  resources: [schemamigrations/status]
  verbs: [get, patch]
# Jobs carry an ownerReference with blockOwnerDeletion, which needs update on the owner's finalizers.
- apiGroups: [schemagate.io]
  resources: [schemamigrations/finalizers]
  verbs: [update]
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create]
# Pods: the runner's result is the Job pod's termination message; the rollout gate watches gated pods
# and sets their schemagate.io/schema-ready condition.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
# The rollout gate reads each gated Deployment (selector, pod template's readinessGates).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
{{- if eq .Values.rbac.secrets "namespace" }}
# get only: the operator reads the Secret a SchemaMigration names, and cannot enumerate Secrets.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
