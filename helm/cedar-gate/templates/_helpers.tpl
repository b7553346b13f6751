{{/* Chart name, truncated to the 63 characters Kubernetes allows in a label. */}}
{{- define "cedar-gate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name: release-chart unless the release name already contains the chart name. */}}
{{- define "cedar-gate.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "cedar-gate.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "cedar-gate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "cedar-gate.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "cedar-gate.labels" -}}
helm.sh/chart: {{ include "cedar-gate.chart" . }}
{{ include "cedar-gate.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: cedar-gate
{{- end }}

{{- define "cedar-gate.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "cedar-gate.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "cedar-gate.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The ConfigMap mounted at /etc/cedar-gate/policies. */}}
{{- define "cedar-gate.policiesConfigMap" -}}
{{- if .Values.existingConfigMap }}
{{- .Values.existingConfigMap }}
{{- else }}
{{- printf "%s-policies" (include "cedar-gate.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{/*
The policy directory as a map of file name to content: the values when given, else the
example policy set shipped in files/examples (a link to the repository's cedar/).
Entities default to the examples only together with the example policies, so example
group memberships never grant anything under a user's own policies.
*/}}
{{- define "cedar-gate.policyFiles" -}}
{{- $files := dict }}
{{- $examples := empty .Values.policies }}
{{- if $examples }}
{{- range $path, $_ := .Files.Glob "files/examples/*.cedar" }}
{{- $_ := set $files (base $path) ($.Files.Get $path) }}
{{- end }}
{{- else }}
{{- range $name, $text := .Values.policies }}
{{- $_ := set $files (ternary $name (printf "%s.cedar" $name) (hasSuffix ".cedar" $name)) $text }}
{{- end }}
{{- end }}
{{- $_ := set $files "schema.cedarschema" (default (.Files.Get "files/examples/schema.cedarschema") .Values.schema) }}
{{- $_ := set $files "entities.json" (default (ternary (.Files.Get "files/examples/entities.json") "[]" $examples) .Values.entities) }}
{{- toYaml $files }}
{{- end }}

{{/* cedar-gate's config file: the `config` value plus what the chart owns. */}}
{{- define "cedar-gate.config" -}}
{{- $config := deepCopy .Values.config }}
{{- $server := get $config "server" | default dict }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "cert_file" "/etc/cedar-gate/tls/tls.crt" "key_file" "/etc/cedar-gate/tls/tls.key" "reload_interval_seconds" .Values.tls.reloadIntervalSeconds }}
{{- if .Values.tls.verifyClient }}
{{- $_ := set $tls "client_ca_file" "/etc/cedar-gate/tls/ca.crt" }}
{{- end }}
{{- $_ := set $server "tls" $tls }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- toYaml $config }}
{{- end }}
