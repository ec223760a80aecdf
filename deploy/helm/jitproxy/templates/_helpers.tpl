{{- define "jitproxy.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "jitproxy.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (include "jitproxy.fullname" .) -}}
{{- end -}}

{{- define "jitproxy.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "jitproxy.labels" -}}
{{ include "jitproxy.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/*
jitproxy.mintable is a YAML map namespace -> sorted ServiceAccount names
jitproxy may mint tokens for: those of the access policies of
cluster.target with provider tokenrequest, the discovery ServiceAccount and
extraMintableServiceAccounts. A tokenrequest policy with neither
serviceAccountNamespace nor namespaces would need a cluster-wide minter,
which is as good as cluster-admin: the chart refuses it.
*/}}
{{- define "jitproxy.mintable" -}}
{{- $m := dict -}}
{{- $target := .Values.cluster.target -}}
{{- if $target -}}
{{- range $file, $p := .Values.accessPolicies -}}
{{- $spec := $p.spec | default dict -}}
{{- $cred := $spec.credential | default dict -}}
{{- if and (eq ($cred.provider | default "") "tokenrequest") (eq ($spec.target | default "") $target) -}}
{{- $opts := $cred.options | default dict -}}
{{- if not $opts.serviceAccount -}}
{{- fail (printf "accessPolicies.%s: provider tokenrequest without options.serviceAccount" $file) -}}
{{- end -}}
{{- $nss := $spec.namespaces | default list -}}
{{- if $opts.serviceAccountNamespace -}}
{{- $nss = list $opts.serviceAccountNamespace -}}
{{- end -}}
{{- if not $nss -}}
{{- fail (printf "accessPolicies.%s: provider tokenrequest needs options.serviceAccountNamespace or namespaces; a minter for every namespace is as good as cluster-admin" $file) -}}
{{- end -}}
{{- range $ns := $nss -}}
{{- if contains "*" $ns -}}
{{- fail (printf "accessPolicies.%s: namespace %q: jitproxy's token minting is granted per namespace; set options.serviceAccountNamespace" $file $ns) -}}
{{- end -}}
{{- $_ := set $m $ns (append (get $m $ns | default list) $opts.serviceAccount) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $d := .Values.cluster.discovery -}}
{{- if not $d.disabled -}}
{{- $ns := $d.namespace | default "default" -}}
{{- $_ := set $m $ns (append (get $m $ns | default list) ($d.serviceAccount | default "default")) -}}
{{- end -}}
{{- end -}}
{{- range $sa := .Values.extraMintableServiceAccounts -}}
{{- $_ := set $m $sa.namespace (append (get $m $sa.namespace | default list) $sa.name) -}}
{{- end -}}
{{- $out := dict -}}
{{- range $ns, $names := $m -}}
{{- $_ := set $out $ns (uniq (sortAlpha $names)) -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* jitproxy.checks fails the render on combinations replicas cannot share. */}}
{{- define "jitproxy.checks" -}}
{{- if gt (int .Values.replicaCount) 1 -}}
{{- if not .Values.redis.address -}}
{{- fail "replicaCount > 1 needs redis.address: replicas share grants and sessions through Redis (the embedded store serves one process)" -}}
{{- end -}}
{{- if not .Values.ca.secretName -}}
{{- fail "replicaCount > 1 needs ca.secretName: every replica must present the same CA (a Secret with ca.crt and ca.key), never one generated per pod" -}}
{{- end -}}
{{- end -}}
{{- end -}}
