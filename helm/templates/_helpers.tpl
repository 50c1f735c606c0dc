{{- define "kafka-bridge.fullname" -}}
{{- printf "%s" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kafka-bridge.labels" -}}
app.kubernetes.io/name: kafka-bridge
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
