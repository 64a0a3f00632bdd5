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

{{- define "config-server.fileVersion" -}}
{{- $v := regexFind "^[0-9]+" (base .) -}}
{{- if not $v -}}
{{- fail (printf "config-server: %s: a goose migration file name starts with its version number (00002_add_x.sql)" .) -}}
{{- end -}}
{{- $v -}}
{{- end -}}

{{- /*
The migration files packed into ConfigMaps, as JSON: [{"name": ..., "files": [path, ...]}, ...].

Greedy, in file order: a ConfigMap takes files until the next would take it past 900 KiB of names and
contents (the apiserver refuses a ConfigMap whose data exceeds 1 MiB), so a new migration at the end
changes only the last ConfigMap. Each ConfigMap is named after its content (index and a hash of its
files' names and checksums) and immutable: an object of that name can hold nothing but these files. Named
by version or index instead, a ConfigMap keeps keys a failed release added, because Helm's three-way merge
deletes only what the last *deployed* release had.
*/ -}}
{{- define "config-server.migrationPacks" -}}
{{- $limit := 921600 -}}
{{- $packs := list -}}
{{- $files := list -}}
{{- $size := 0 -}}
{{- range $path, $_ := .Files.Glob "files/migrations/*.sql" -}}
{{- $_ := include "config-server.fileVersion" $path -}}
{{- $n := add (len (base $path)) (len ($.Files.Get $path)) -}}
{{- if gt $n $limit -}}
{{- fail (printf "config-server: %s is %d bytes; a ConfigMap carries at most %d (900 KiB) of migrations: split it into several migrations" $path $n $limit) -}}
{{- end -}}
{{- if and $files (gt (add $size $n) $limit) -}}
{{- $packs = append $packs $files -}}
{{- $files = list -}}
{{- $size = 0 -}}
{{- end -}}
{{- $files = append $files $path -}}
{{- $size = add $size $n -}}
{{- end -}}
{{- if $files -}}
{{- $packs = append $packs $files -}}
{{- end -}}
{{- if gt (len $packs) 32 -}}
{{- fail (printf "config-server: files/migrations needs %d ConfigMaps of at most 900 KiB; a SchemaMigration lists at most 32 (and a Helm release holds about 1 MiB gzip'd): bake the migrations into an image (migrationsImage.image)" (len $packs)) -}}
{{- end -}}
{{- $out := list -}}
{{- range $i, $pack := $packs -}}
{{- $sums := list -}}
{{- range $path := $pack -}}
{{- $sums = append $sums (printf "%s %s" (base $path) ($.Files.Get $path | sha256sum)) -}}
{{- end -}}
{{- $name := printf "%s-migrations-%d-%s" (include "config-server.fullname" $) $i (join "\n" $sums | sha256sum | trunc 10) -}}
{{- $out = append $out (dict "name" $name "files" $pack) -}}
{{- end -}}
{{- toJson $out -}}
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
