{{- /* Labels of every object of this chart. */}}
{{- define "kqi-hub.labels" -}}
app.kubernetes.io/name: kqi-hub
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | quote }}
{{- end }}

{{- /* Fixed names that the code and values.yaml use as well. */}}
{{- define "kqi-hub.runtimeConfigMap" -}}kqi-runtime{{- end }}
{{- define "kqi-hub.configMap" -}}kqi-hub-config{{- end }}
{{- define "kqi-hub.postgresql" -}}kqi-postgresql{{- end }}

{{- /*
  The service account of z2jh's hub pod: the kqi service is a process in that pod.
  Mirrors z2jh's "jupyterhub.hub-serviceaccount.fullname" (which a parent chart cannot
  call when the dependency is absent, as in the offline tests).
*/}}
{{- define "kqi-hub.hubServiceAccount" -}}
{{- if .Values.rbac.hubServiceAccount -}}
{{- .Values.rbac.hubServiceAccount -}}
{{- else -}}
{{- $z2jh := .Values.jupyterhub | default dict -}}
{{- $hub := $z2jh.hub | default dict -}}
{{- $sa := $hub.serviceAccount | default dict -}}
{{- $override := $z2jh.fullnameOverride -}}
{{- $prefix := "" -}}
{{- if eq (typeOf $override) "string" -}}
{{- $prefix = $override -}}
{{- else -}}
{{- $name := $z2jh.nameOverride | default "jupyterhub" -}}
{{- $prefix = ternary .Release.Name (printf "%s-%s" .Release.Name $name) (contains $name .Release.Name) -}}
{{- end -}}
{{- $hubName := ternary (printf "%s-hub" $prefix) "hub" (ne $prefix "") -}}
{{- if and (hasKey $sa "create") (not $sa.create) -}}
{{- $sa.name | default "default" -}}
{{- else -}}
{{- $sa.name | default $hubName -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- /* A value of the Secret: the one given, else the one already in the cluster, else a new one. */}}
{{- define "kqi-hub.secretValue" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $given := index . 2 -}}
{{- $length := index . 3 -}}
{{- if $given -}}
{{- $given -}}
{{- else -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace $root.Values.secret.name -}}
{{- $old := "" -}}
{{- if $existing -}}
{{- $old = index ($existing.data | default dict) $key | default "" -}}
{{- end -}}
{{- if $old -}}
{{- $old | b64dec -}}
{{- else -}}
{{- randAlphaNum $length -}}
{{- end -}}
{{- end -}}
{{- end }}

{{- /* Labels that select z2jh's hub pod (its legacy labels: component and release). */}}
{{- define "kqi-hub.hubPodLabels" -}}
component: hub
release: {{ .Release.Name | quote }}
{{- end }}
