{{- define "config-server.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "config-server.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "config-server.labels" -}}
{{ include "config-server.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "config-server.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository .Values.image.tag -}}
{{- end -}}
{{- end -}}

{{- define "config-server.secretName" -}}
{{- if .Values.database.url -}}
{{- printf "%s-db" (include "config-server.fullname" .) -}}
{{- else if .Values.database.existingSecret -}}
{{- .Values.database.existingSecret -}}
{{- else -}}
{{- fail "config-server: set database.existingSecret to the Secret holding the database URL (or, for development only, database.url)" -}}
{{- end -}}
{{- end -}}

{{/* The packaged migration files, one per line: path, then the ConfigMap that carries it. */}}
{{- define "config-server.migrationFiles" -}}
{{- range $path, $_ := .Files.Glob "files/migrations/*.sql" }}
{{ $path }}
{{- end -}}
{{- end -}}

{{- define "config-server.fileVersion" -}}
{{- $v := regexFind "^[0-9]+" (base .) -}}
{{- if not $v -}}
{{- fail (printf "config-server: %s: a goose migration file name starts with its version number (00002_add_x.sql)" .) -}}
{{- end -}}
{{- $v -}}
{{- end -}}

{{- define "config-server.configMapName" -}}
{{- printf "%s-migration-%s" (include "config-server.fullname" .root) (include "config-server.fileVersion" .path) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Highest packaged version, as a decimal string ("0" when there are no files). */}}
{{- define "config-server.latestVersion" -}}
{{- $max := 0 -}}
{{- range $path, $_ := .Files.Glob "files/migrations/*.sql" -}}
{{- $v := include "config-server.fileVersion" $path | atoi -}}
{{- if gt $v $max }}{{ $max = $v }}{{ end -}}
{{- end -}}
{{- $max -}}
{{- end -}}

{{- define "config-server.requiredVersion" -}}
{{- if and .Values.migrationsImage.image (not .Values.schema.requiredVersion) -}}
{{- fail "config-server: with migrationsImage.image the chart cannot see the migration files: set schema.requiredVersion" -}}
{{- end -}}
{{- .Values.schema.requiredVersion | default (include "config-server.latestVersion" .) | toString -}}
{{- end -}}
