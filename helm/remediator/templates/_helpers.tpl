{{/* The release's full name, at most 63 characters (a Kubernetes name and label value). */}}
{{- define "remediator.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "remediator.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "remediator.labels" -}}
{{ include "remediator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "remediator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "remediator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "remediator.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* The rules of files/rbac.yaml (generated from the code's API call tables) for one scope. */}}
{{- define "remediator.rules" -}}
{{- $table := .root.Files.Get "files/rbac.yaml" | fromYaml -}}
{{- $rules := get $table .scope -}}
{{- if not $rules -}}{{- fail (printf "files/rbac.yaml has no %s rules: run python -m remediator.live.chart" .scope) -}}{{- end -}}
{{- toYaml $rules -}}
{{- end -}}

{{/* The agent's configuration file: the user's `config` with the keys the chart owns set. */}}
{{- define "remediator.config" -}}
{{- $config := deepCopy .Values.config -}}
{{- $_ := set $config "store" (printf "%s/ledger.db" (trimSuffix "/" .Values.ledger.mountPath)) -}}
{{- $listen := merge (dict "host" "0.0.0.0" "port" (int .Values.service.port)) (default dict $config.listen) -}}
{{- $_ := set $config "listen" $listen -}}
{{- /* The operator: its Lease in the release namespace, named for the release; in namespaced RBAC it
       watches only the namespaces it has a Role in. */ -}}
{{- $operator := merge (default dict $config.operator) (dict "namespace" .Release.Namespace "lease_name" (printf "%s-leader" (include "remediator.fullname" .))) -}}
{{- if eq .Values.rbac.scope "namespaced" -}}
{{- $_ := set $operator "namespaces" .Values.rbac.namespaces -}}
{{- end -}}
{{- $_ := set $config "operator" $operator -}}
{{- /* Secret reverts: on only with their RBAC (templates/rbac.yaml) and the sealing key's env var (deployment.yaml). */ -}}
{{- $_ := set $config "secrets" (dict "revert" (.Values.secretRevert.enabled | default false) "key_env" "REMEDIATOR_SECRET_KEY") -}}
{{- toYaml $config -}}
{{- end -}}

{{- /* A new or changed spec.approval must name the requesting user (ValidatingAdmissionPolicy). */ -}}
{{- define "remediator.approverRule" -}}
!has(object.spec.approval) || (request.operation == 'UPDATE' && has(oldObject.spec.approval) && oldObject.spec.approval == object.spec.approval) || object.spec.approval.approver == request.userInfo.username
{{- end -}}
