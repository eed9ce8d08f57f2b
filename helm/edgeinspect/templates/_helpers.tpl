{{/* Names, labels, images and the env/volume fragments every edgeinspect pod shares. */}}

{{- define "edgeinspect.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "edgeinspect.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "edgeinspect.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Selector labels: (dict "root" $ "component" "camera" "line" "line-1") */}}
{{- define "edgeinspect.selectorLabels" -}}
app.kubernetes.io/name: {{ include "edgeinspect.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .line }}
edgeinspect.io/line: {{ .line }}
{{- end }}
{{- end }}

{{- define "edgeinspect.labels" -}}
{{ include "edgeinspect.selectorLabels" . }}
helm.sh/chart: {{ include "edgeinspect.chart" .root }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: edgeinspect
{{- end }}

{{/* An image reference: (dict "root" $ "image" .Values.images.camera) */}}
{{- define "edgeinspect.image" -}}
{{- $registry := .root.Values.images.registry -}}
{{- $tag := default .root.Chart.AppVersion .image.tag -}}
{{- if $registry }}{{ printf "%s/%s:%s" (trimSuffix "/" $registry) .image.repository $tag }}{{ else }}{{ printf "%s:%s" .image.repository $tag }}{{ end }}
{{- end }}

{{- define "edgeinspect.imagePullSecrets" -}}
{{- with .Values.images.pullSecrets }}
imagePullSecrets:
{{- range . }}
  - name: {{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* Secret names (created by the chart unless an existing one is named) */}}
{{- define "edgeinspect.redisSecret" -}}
{{- if and (not .Values.redis.bundled) .Values.redis.existingSecret }}{{ .Values.redis.existingSecret }}{{ else }}{{ include "edgeinspect.fullname" . }}-redis{{ end }}
{{- end }}

{{- define "edgeinspect.redisHost" -}}
{{ include "edgeinspect.fullname" . }}-redis
{{- end }}

{{- define "edgeinspect.redisUrl" -}}
{{- if .Values.redis.bundled }}
{{- if .Values.redis.password }}
{{- printf "redis://:%s@%s:6379/0" (urlquery .Values.redis.password) (include "edgeinspect.redisHost" .) }}
{{- else }}
{{- printf "redis://%s:6379/0" (include "edgeinspect.redisHost" .) }}
{{- end }}
{{- else }}
{{- required "redis.url (or redis.existingSecret) is required when redis.bundled is false" .Values.redis.url }}
{{- end }}
{{- end }}

{{- define "edgeinspect.s3Secret" -}}
{{- default (printf "%s-s3" (include "edgeinspect.fullname" .)) .Values.s3.existingSecret }}
{{- end }}

{{- define "edgeinspect.s3SecretEnabled" -}}
{{- if or .Values.s3.existingSecret .Values.s3.accessKeyId }}true{{ end }}
{{- end }}

{{- define "edgeinspect.mqttSecret" -}}
{{- default (printf "%s-mqtt" (include "edgeinspect.fullname" .)) .Values.mqtt.existingSecret }}
{{- end }}

{{- define "edgeinspect.mqttTlsSecret" -}}
{{- default (printf "%s-mqtt-tls" (include "edgeinspect.fullname" .)) .Values.mqtt.tls.existingSecret }}
{{- end }}

{{- define "edgeinspect.keysSecret" -}}
{{- default (printf "%s-trusted-keys" (include "edgeinspect.fullname" .)) .Values.trustedKeys.existingSecret }}
{{- end }}

{{- define "edgeinspect.uiSecret" -}}
{{- default (printf "%s-ui-auth" (include "edgeinspect.fullname" .)) .Values.ui.auth.existingSecret }}
{{- end }}

{{/* Per-line resource names: (dict "root" $ "line" $line) */}}
{{- define "edgeinspect.lineName" -}}
{{- printf "%s-%s" (include "edgeinspect.fullname" .root) .line.name | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "edgeinspect.agentService" -}}
{{ include "edgeinspect.lineName" . }}-agent
{{- end }}

{{/* Whether a line runs on Jetson: its own flag, else the global default */}}
{{- define "edgeinspect.isJetson" -}}
{{- if hasKey .line "jetson" }}{{ if .line.jetson }}true{{ end }}{{ else if .root.Values.jetson.enabled }}true{{ end }}
{{- end }}

{{/* Pod annotations that roll pods when the chart's config or secrets change */}}
{{- define "edgeinspect.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secrets: {{ include (print .Template.BasePath "/secrets.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* env shared by every edge service: the ConfigMap and the Redis URL */}}
{{- define "edgeinspect.commonEnv" -}}
- name: EI_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "edgeinspect.redisSecret" . }}
      key: {{ if and (not .Values.redis.bundled) .Values.redis.existingSecret }}{{ .Values.redis.urlKey }}{{ else }}url{{ end }}
{{- end }}

{{- define "edgeinspect.envFrom" -}}
- configMapRef:
    name: {{ include "edgeinspect.fullname" . }}-config
{{- end }}

{{/* A map of extra EI_ settings as env entries */}}
{{- define "edgeinspect.extraEnv" -}}
{{- range $key, $value := . }}
- name: {{ $key }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}

{{/* Probes on a named port: (dict "port" "http" "initial" 5) */}}
{{- define "edgeinspect.probes" -}}
livenessProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 15
  timeoutSeconds: 5
  failureThreshold: 4
readinessProbe:
  httpGet: {path: /readyz, port: {{ .port }}}
  periodSeconds: 5
  timeoutSeconds: 3
  failureThreshold: 3
startupProbe:
  httpGet: {path: /healthz, port: {{ .port }}}
  periodSeconds: 2
  failureThreshold: {{ .startupFailures | default 30 }}
{{- end }}

{{- define "edgeinspect.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.containerSecurityContext | nindent 2 }}
{{- end }}

{{/* The model directory volume (hostPath on each node, or one RWX claim) */}}
{{- define "edgeinspect.modelVolume" -}}
- name: models
{{- if eq .Values.modelDir.type "pvc" }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-models" (include "edgeinspect.fullname" .)) .Values.modelDir.pvc.existingClaim }}
{{- else }}
  hostPath:
    path: {{ .Values.modelDir.hostPath }}
    type: DirectoryOrCreate
{{- end }}
{{- end }}

{{/* Mount of the model directory; with a shared claim each node gets its own sub-folder */}}
{{- define "edgeinspect.modelMount" -}}
- name: models
  mountPath: /var/lib/edgeinspect/models
{{- if eq .Values.modelDir.type "pvc" }}
  subPathExpr: $(NODE_NAME)
{{- end }}
{{- end }}

{{- define "edgeinspect.nodeNameEnv" -}}
- name: NODE_NAME
  valueFrom:
    fieldRef: {fieldPath: spec.nodeName}
{{- end }}

{{/* Init container that hands a hostPath model folder to the services' uid */}}
{{- define "edgeinspect.fixPermissions" -}}
{{- if and .Values.modelDir.fixPermissions (eq .Values.modelDir.type "hostPath") }}
- name: model-dir-owner
  image: {{ include "edgeinspect.image" (dict "root" . "image" .Values.images.modelManager) }}
  imagePullPolicy: {{ .Values.images.pullPolicy }}
  command: ["chown", "10001:10001", "/var/lib/edgeinspect/models"]
  securityContext:
    runAsUser: 0
    runAsNonRoot: false
    allowPrivilegeEscalation: false
    readOnlyRootFilesystem: true
    capabilities: {drop: [ALL], add: [CHOWN]}
  resources:
    requests: {cpu: 10m, memory: 16Mi}
    limits: {cpu: 100m, memory: 64Mi}
  volumeMounts:
    - name: models
      mountPath: /var/lib/edgeinspect/models
{{- end }}
{{- end }}

{{- define "edgeinspect.trustedKeysVolume" -}}
- name: trusted-keys
  secret:
    secretName: {{ include "edgeinspect.keysSecret" . }}
    defaultMode: 0444
{{- end }}

{{/* The agent's TLS Secret (generated, or agent.tls.existingSecret) */}}
{{- define "edgeinspect.agentTlsSecret" -}}
{{- .Values.agent.tls.existingSecret | default (printf "%s-agent-tls" (include "edgeinspect.fullname" .)) -}}
{{- end }}

{{/* env of a client of the agent's TCP port: trust the agent's CA, check its name, mTLS if asked */}}
{{- define "edgeinspect.agentTlsClientEnv" -}}
- {name: EI_AGENT_TLS_CA_FILE, value: /etc/edgeinspect/agent-tls/ca.crt}
- {name: EI_AGENT_TLS_SERVER_NAME, value: {{ .Values.agent.tls.serverName | quote }}}
{{- if .Values.agent.tls.clientAuth }}
- {name: EI_AGENT_TLS_CLIENT_CERT_FILE, value: /etc/edgeinspect/agent-tls/tls.crt}
- {name: EI_AGENT_TLS_CLIENT_KEY_FILE, value: /etc/edgeinspect/agent-tls/tls.key}
{{- end }}
{{- end }}

{{/* the agent's TLS Secret as a volume */}}
{{- define "edgeinspect.agentTlsVolume" -}}
- name: agent-tls
  secret:
    secretName: {{ include "edgeinspect.agentTlsSecret" . }}
    defaultMode: 0440
{{- end }}
