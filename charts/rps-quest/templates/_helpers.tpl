{{/* Names ------------------------------------------------------------------------------------------------ */}}

{{- define "rps-quest.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "rps-quest.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: (dict "ctx" $ "component" "server") */}}
{{- define "rps-quest.componentName" -}}
{{- printf "%s-%s" (include "rps-quest.fullname" .ctx | trunc 50 | trimSuffix "-") .component -}}
{{- end -}}

{{- define "rps-quest.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "rps-quest.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Labels: the app.kubernetes.io/* set; (dict "ctx" $ "component" "server") */}}
{{- define "rps-quest.selectorLabels" -}}
app.kubernetes.io/name: {{ include "rps-quest.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "rps-quest.labels" -}}
{{ include "rps-quest.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: rps-quest
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* An image reference: (dict "image" .Values.server.image "ctx" $); the digest wins over the tag */}}
{{- define "rps-quest.image" -}}
{{- if .image.digest -}}
{{- printf "%s@%s" .image.repository .image.digest -}}
{{- else -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .image.tag) -}}
{{- end -}}
{{- end -}}

{{/* Security contexts -------------------------------------------------------------------------------------- */}}

{{- define "rps-quest.podSecurityContext" -}}
{{ toYaml .Values.podSecurityContext }}
{{- end -}}

{{- define "rps-quest.containerSecurityContext" -}}
{{ toYaml .Values.containerSecurityContext }}
{{- end -}}

{{/* Refusals: combinations the chart will not render -------------------------------------------------------- */}}

{{- define "rps-quest.validate" -}}
{{- $v := .Values -}}
{{- if and (eq $v.database.kind "sqlite") (or (gt (int $v.server.replicas) 1) $v.server.autoscaling.enabled) -}}
{{- fail "server.replicas > 1 (or server.autoscaling) needs PostgreSQL: set database.kind to postgresql or external. SQLite is one file that only one server pod can own." -}}
{{- end -}}
{{- if and (eq $v.database.kind "external") (not $v.database.external.host) -}}
{{- fail "database.kind external needs database.external.host" -}}
{{- end -}}
{{- if and (eq $v.database.kind "external") (not $v.database.external.existingSecret) -}}
{{- fail "database.kind external needs database.external.existingSecret (a Secret with the password)" -}}
{{- end -}}
{{- if and (eq $v.objectStore.kind "minio") (not $v.objectStore.minio.image.repository) -}}
{{- fail "objectStore.kind minio needs objectStore.minio.image.repository: MinIO's upstream publishes no images since October 2025 (repository archived April 2026); supply an image you build or trust, or use seaweedfs" -}}
{{- end -}}
{{- if and (eq $v.objectStore.kind "external") (not $v.objectStore.external.endpoint) -}}
{{- fail "objectStore.kind external needs objectStore.external.endpoint" -}}
{{- end -}}
{{- if and (eq $v.objectStore.kind "external") (not $v.objectStore.existingSecret) -}}
{{- fail "objectStore.kind external needs objectStore.existingSecret (a Secret with the access and secret keys)" -}}
{{- end -}}
{{- if and $v.mlflow.enabled (eq $v.mlflow.backendStore "postgresql") (eq $v.database.kind "sqlite") -}}
{{- fail "mlflow.backendStore postgresql needs database.kind postgresql or external" -}}
{{- end -}}
{{- if and $v.server.autoscaling.enabled (lt (int $v.server.autoscaling.maxReplicas) (int $v.server.autoscaling.minReplicas)) -}}
{{- fail "server.autoscaling.maxReplicas must be at least minReplicas" -}}
{{- end -}}
{{- end -}}

{{/* Secrets ------------------------------------------------------------------------------------------------- */}}

{{/* The Secret the chart generates (admin token, store keys, bundled PostgreSQL password) */}}
{{- define "rps-quest.secretName" -}}
{{- include "rps-quest.fullname" . -}}
{{- end -}}

{{/* A generated value: the one already in the release's Secret (kept across upgrades), else a new random one;
     (dict "ctx" $ "key" "admin-token" "length" 40) */}}
{{- define "rps-quest.generated" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace (include "rps-quest.secretName" .ctx) -}}
{{- if and $existing (hasKey $existing.data .key) -}}
{{- index $existing.data .key | b64dec -}}
{{- else -}}
{{- randAlphaNum (int .length) -}}
{{- end -}}
{{- end -}}

{{- define "rps-quest.adminTokenSecret" -}}
{{- default (include "rps-quest.secretName" .) .Values.adminToken.existingSecret -}}
{{- end -}}

{{- define "rps-quest.storeSecret" -}}
{{- default (include "rps-quest.secretName" .) .Values.objectStore.existingSecret -}}
{{- end -}}

{{- define "rps-quest.dbSecret" -}}
{{- if eq .Values.database.kind "external" -}}
{{- .Values.database.external.existingSecret -}}
{{- else -}}
{{- default (include "rps-quest.secretName" .) .Values.database.postgresql.existingSecret -}}
{{- end -}}
{{- end -}}

{{- define "rps-quest.dbPasswordKey" -}}
{{- if eq .Values.database.kind "external" -}}
{{- .Values.database.external.passwordKey -}}
{{- else if .Values.database.postgresql.existingSecret -}}
{{- .Values.database.postgresql.passwordKey -}}
{{- else -}}
postgres-password
{{- end -}}
{{- end -}}

{{/* Endpoints ----------------------------------------------------------------------------------------------- */}}

{{- define "rps-quest.s3Endpoint" -}}
{{- if eq .Values.objectStore.kind "seaweedfs" -}}
{{- printf "http://%s:8333" (include "rps-quest.componentName" (dict "ctx" . "component" "seaweedfs")) -}}
{{- else if eq .Values.objectStore.kind "minio" -}}
{{- printf "http://%s:9000" (include "rps-quest.componentName" (dict "ctx" . "component" "minio")) -}}
{{- else -}}
{{- .Values.objectStore.external.endpoint -}}
{{- end -}}
{{- end -}}

{{/* A PostgreSQL URL without its password (the pods get it as PGPASSWORD); (dict "ctx" $ "database" "x") */}}
{{- define "rps-quest.postgresUrl" -}}
{{- $v := .ctx.Values.database -}}
{{- if eq $v.kind "external" -}}
{{- printf "postgresql://%s@%s:%d/%s?sslmode=%s" $v.external.user $v.external.host (int $v.external.port) .database $v.external.sslmode -}}
{{- else -}}
{{- printf "postgresql://%s@%s:5432/%s" $v.postgresql.user (include "rps-quest.componentName" (dict "ctx" .ctx "component" "postgresql")) .database -}}
{{- end -}}
{{- end -}}

{{- define "rps-quest.databaseName" -}}
{{- if eq .Values.database.kind "external" -}}
{{- .Values.database.external.database -}}
{{- else -}}
{{- .Values.database.postgresql.database -}}
{{- end -}}
{{- end -}}

{{/* The environment the server, the trainer and the bucket Job share: settings, database, store, admin token */}}
{{- define "rps-quest.env" -}}
- name: RPSQUEST_DATA_DIR
  value: /data
{{- if ne .Values.database.kind "sqlite" }}
- name: RPSQUEST_DATABASE_URL
  value: {{ include "rps-quest.postgresUrl" (dict "ctx" . "database" (include "rps-quest.databaseName" .)) | quote }}
- name: PGPASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.dbSecret" . }}
      key: {{ include "rps-quest.dbPasswordKey" . }}
{{- end }}
- name: RPSQUEST_S3_ENDPOINT
  value: {{ include "rps-quest.s3Endpoint" . | quote }}
- name: RPSQUEST_S3_BUCKET
  value: {{ .Values.objectStore.bucket | quote }}
- name: RPSQUEST_S3_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.storeSecret" . }}
      key: {{ .Values.objectStore.accessKeyKey }}
- name: RPSQUEST_S3_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.storeSecret" . }}
      key: {{ .Values.objectStore.secretKeyKey }}
- name: RPSQUEST_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.adminTokenSecret" . }}
      key: {{ .Values.adminToken.key }}
{{- end -}}

{{/* S3 credentials under the names AWS tools read (SeaweedFS, MLflow's boto3) */}}
{{- define "rps-quest.awsEnv" -}}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.storeSecret" . }}
      key: {{ .Values.objectStore.accessKeyKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "rps-quest.storeSecret" . }}
      key: {{ .Values.objectStore.secretKeyKey }}
{{- end -}}

{{/* Storage class of a PVC spec: (dict "persistence" .Values.x.persistence) */}}
{{- define "rps-quest.storageClass" -}}
{{- if .persistence.storageClass }}
storageClassName: {{ .persistence.storageClass | quote }}
{{- end }}
{{- end -}}
