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

{{/* The namespaces where the operator acts (creates Jobs, reads Secrets, gates pods), one per line. In
     namespaced mode it watches only these; in cluster-wide mode it watches everywhere and acts only here.
     The release namespace is one of them only when it is named. */}}
{{- define "schemagate.namespaces" -}}
{{- if not .Values.watch.namespaces -}}
{{- fail "watch.namespaces is required: name the namespaces whose SchemaMigrations the operator may act on (the release namespace is not assumed)" -}}
{{- end -}}
{{- range .Values.watch.namespaces | uniq }}
{{ . }}
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

{{/* The runner image migration Jobs use by default, and so always allowed. */}}
{{- define "schemagate.jobImage" -}}
{{- .Values.operator.jobImage | default (include "schemagate.image" .) -}}
{{- end -}}

{{/* Images a SchemaMigration may name (spec.job.image, spec.source.image.image), as a JSON list. */}}
{{- define "schemagate.allowedImages" -}}
{{- prepend .Values.jobs.allowedImages (include "schemagate.jobImage" .) | uniq | toJson -}}
{{- end -}}

{{/* ServiceAccounts spec.job.serviceAccountName may name, as a JSON list. */}}
{{- define "schemagate.allowedServiceAccounts" -}}
{{- prepend .Values.jobs.allowedServiceAccounts .Values.migrationServiceAccount.name | uniq | toJson -}}
{{- end -}}

{{/* Acting in a namespace: what the operator needs where SchemaMigrations run. Namespaced mode grants
     these with the read rules in one Role per namespace; cluster-wide mode binds them per namespace only
     (RoleBindings to the "-act" ClusterRole). docs/security.md lists each with its reason. */}}
{{- define "schemagate.actRules" -}}
# Jobs carry an ownerReference with blockOwnerDeletion, which needs update on the owner's finalizers.
- apiGroups: [schemagate.io]
  resources: [schemamigrations/finalizers]
  verbs: [update]
# A SchemaMigrationSet's children: one SchemaMigration per database, updated to the set's template in
# waves, let go when its database leaves the set (never deleted).
- apiGroups: [schemagate.io]
  resources: [schemamigrations]
  verbs: [create, patch]
- apiGroups: [schemagate.io]
  resources: [schemamigrationsets/finalizers]
  verbs: [update]
# create only: never update or delete (owner GC and the Job's TTL remove them).
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create]
# The rollout gate sets the schemagate.io/schema-ready condition of gated pods.
- apiGroups: [""]
  resources: [pods/status]
  verbs: [patch]
# The rollout gate reads each gated Deployment and its pods' ReplicaSets, each gated StatefulSet and its
# pods' ControllerRevisions (template, ownership by UID).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get]
- apiGroups: [apps]
  resources: [replicasets]
  verbs: [get]
- apiGroups: [apps]
  resources: [statefulsets]
  verbs: [get]
- apiGroups: [apps]
  resources: [controllerrevisions]
  verbs: [get]
# Frees a database's Lease whose holder Job has finished or is gone (its runner died without releasing
# it), so the next run starts at once instead of after the Lease's duration. Update only: never create or delete.
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [update]
# The migration files; get only, by the names a SchemaMigration gives.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get]
# Whether a backup claim is labelled for backups (jobs.backupClaimLabel).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get]
# Why a migration Job has no pod: the Job controller's FailedCreate Events on it (a ServiceAccount that does
# not exist, a quota, Pod Security), listed by field selector only while the Job has no pod.
- apiGroups: [""]
  resources: [events]
  verbs: [list]
{{- if eq .Values.rbac.secrets "namespace" }}
# get only: the operator reads the Secret a SchemaMigration names, and cannot enumerate Secrets.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
{{- end }}
{{- if .Values.rbac.listSecrets }}
# A SchemaMigrationSet's spec.databases.selector: the operator lists Secrets as metadata (names, labels).
- apiGroups: [""]
  resources: [secrets]
  verbs: [list]
{{- end }}
{{- end -}}

{{/* Watching and reporting: read/watch plus writes to schemagate's own objects (status, Events). */}}
{{- define "schemagate.watchRules" -}}
- apiGroups: [schemagate.io]
  resources: [schemamigrations]
  verbs: [get, list, watch]
- apiGroups: [schemagate.io]
  resources: [schemamigrations/status]
  verbs: [patch]
- apiGroups: [schemagate.io]
  resources: [schemamigrationsets]
  verbs: [get, list, watch]
- apiGroups: [schemagate.io]
  resources: [schemamigrationsets/status]
  verbs: [patch]
# Watches: the migration Jobs, their pods' termination messages, gated pods, the runners' Leases.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}

{{/* Egress of the operator and the migration Jobs when networkPolicy.egress.restrict: DNS, the apiserver,
     the databases. */}}
{{- define "schemagate.egressRules" -}}
{{- $egress := .Values.networkPolicy.egress -}}
{{- with $egress.dns }}
- to:
    {{- toYaml . | nindent 4 }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end }}
- to:
    {{- range $egress.apiServerCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    {{- range $egress.apiServerPorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
- to:
    {{- range $egress.databaseCIDRs }}
    - ipBlock: {cidr: {{ . }}}
    {{- end }}
  ports:
    {{- range $egress.databasePorts }}
    - {port: {{ . }}, protocol: TCP}
    {{- end }}
{{- end -}}
