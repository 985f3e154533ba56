{{/* The trainer's pod template, shared by the CronJob and the first-run Job: (dict "ctx" $ "args" (list ...)) */}}
{{- define "rps-quest.trainerPod" -}}
{{- $ := .ctx -}}
{{- $t := $.Values.trainer -}}
metadata:
  labels:
    {{- include "rps-quest.labels" (dict "ctx" $ "component" "trainer") | nindent 4 }}
    {{- if ne $.Values.database.kind "sqlite" }}
    {{ include "rps-quest.fullname" $ }}-db-client: "true"
    {{- end }}
    {{ include "rps-quest.fullname" $ }}-store-client: "true"
    {{ include "rps-quest.fullname" $ }}-mlflow-client: "true"
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "rps-quest.serviceAccountName" $ }}
  automountServiceAccountToken: false
  securityContext:
    {{- include "rps-quest.podSecurityContext" $ | nindent 4 }}
  containers:
    - name: trainer
      image: {{ include "rps-quest.image" (dict "image" $t.image "ctx" $) | quote }}
      imagePullPolicy: {{ $t.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      envFrom:
        - configMapRef:
            name: {{ include "rps-quest.componentName" (dict "ctx" $ "component" "settings") }}
      env:
        {{- include "rps-quest.env" $ | nindent 8 }}
        - name: RPSQUEST_TRAINER_MEMORY_MB
          value: {{ $t.memoryBudgetMB | quote }}
        {{- if $.Values.mlflow.enabled }}
        - name: RPSQUEST_MLFLOW_URI
          value: {{ printf "http://%s:5000" (include "rps-quest.componentName" (dict "ctx" $ "component" "mlflow")) | quote }}
        {{- end }}
        {{- with $t.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      resources:
        {{- toYaml $t.resources | nindent 8 }}
      securityContext:
        {{- include "rps-quest.containerSecurityContext" $ | nindent 8 }}
      volumeMounts:
        - name: data
          mountPath: /data
        - name: tmp
          mountPath: /tmp
  volumes:
    - name: data
      persistentVolumeClaim:
        {{- if eq $.Values.database.kind "sqlite" }}
        claimName: {{ include "rps-quest.componentName" (dict "ctx" $ "component" "data") }}
        {{- else }}
        claimName: {{ include "rps-quest.componentName" (dict "ctx" $ "component" "trainer") }}
        {{- end }}
    - name: tmp
      emptyDir: {}
  {{- with $t.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $t.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- if $t.affinity }}
  affinity:
    {{- toYaml $t.affinity | nindent 4 }}
  {{- else if eq $.Values.database.kind "sqlite" }}
  affinity:
    # the SQLite file is on a ReadWriteOnce volume: train on the server's node
    podAffinity:
      requiredDuringSchedulingIgnoredDuringExecution:
        - topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "rps-quest.selectorLabels" (dict "ctx" $ "component" "server") | nindent 14 }}
  {{- end }}
{{- end -}}
