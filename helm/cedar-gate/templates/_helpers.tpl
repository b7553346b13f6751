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
example policy set shipped in files/examples (a copy of the repository's cedar/, kept in
step by `make chart-files`).
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

{{/*
cedar-gate's config file: the `config` value plus what the chart owns. Without
`config.routes`, the route table is the one `make run` uses (files/cedar-gate.yaml, a copy
of the repository's config/cedar-gate.yaml), so model and MCP traffic is classified out of
the box. `config.routes: []` turns classification off (everything is plain HTTP).
*/}}
{{- define "cedar-gate.config" -}}
{{- $config := deepCopy .Values.config }}
{{- if not (hasKey $config "routes") }}
{{- $example := .Files.Get "files/cedar-gate.yaml" | fromYaml }}
{{- $_ := set $config "routes" $example.routes }}
{{- end }}
{{- $server := get $config "server" | default dict }}
{{- if .Values.tls.enabled }}
{{- $tls := dict "cert_file" "/etc/cedar-gate/tls/tls.crt" "key_file" "/etc/cedar-gate/tls/tls.key" "reload_interval_seconds" .Values.tls.reloadIntervalSeconds }}
{{- if .Values.tls.verifyClient }}
{{- $_ := set $tls "client_ca_file" "/etc/cedar-gate/tls/ca.crt" }}
{{- end }}
{{- $_ := set $server "tls" $tls }}
{{- end }}
{{- $_ := set $config "server" $server }}
{{- if .Values.apiKeys.enabled }}
{{- $keys := get $config "api_keys" | default dict }}
{{- $_ := set $keys "store" (printf "/etc/cedar-gate/keys/%s" .Values.apiKeys.key) }}
{{- $_ := set $config "api_keys" $keys }}
{{- end }}
{{- toYaml $config }}
{{- end }}

{{/* Whether more than one pod runs at the low point (a PDB then protects something). */}}
{{- define "cedar-gate.multiReplica" -}}
{{- if .Values.autoscaling.enabled }}
{{- if gt (int .Values.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else }}
{{- if gt (int .Values.replicaCount) 1 }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The alert and recording rule groups: files/prometheus-rules.yaml (a copy of the
repository's deploy/prometheus/cedar-gate-rules.yaml) with `prometheusRule.disabled`
alerts dropped, `prometheusRule.overrides` merged into the named rule (`for`, `expr`,
`labels`, `annotations`), `runbookUrl` added as each alert's `runbook_url` annotation
(`<runbookUrl>#<alertname lowercased>`), then `prometheusRule.extraGroups` appended.
*/}}
{{- define "cedar-gate.ruleGroups" -}}
{{- $v := .Values.prometheusRule }}
{{- $rules := .Files.Get "files/prometheus-rules.yaml" | fromYaml }}
{{- $groups := list }}
{{- range $rules.groups }}
{{- $kept := list }}
{{- range .rules }}
{{- $name := default .record .alert }}
{{- if not (has $name $v.disabled) }}
{{- $rule := deepCopy . }}
{{- with (get $v.overrides $name) }}
{{- $rule = mergeOverwrite $rule (deepCopy .) }}
{{- end }}
{{- if and $rule.alert $v.runbookUrl }}
{{- $ann := get $rule "annotations" | default dict }}
{{- if not (hasKey $ann "runbook_url") }}
{{- $_ := set $ann "runbook_url" (printf "%s#%s" $v.runbookUrl (lower $rule.alert)) }}
{{- end }}
{{- $_ := set $rule "annotations" $ann }}
{{- end }}
{{- $kept = append $kept $rule }}
{{- end }}
{{- end }}
{{- if $kept }}
{{- $groups = append $groups (dict "name" .name "rules" $kept) }}
{{- end }}
{{- end }}
{{- range $v.extraGroups }}
{{- $groups = append $groups . }}
{{- end }}
{{- toYaml $groups }}
{{- end }}
