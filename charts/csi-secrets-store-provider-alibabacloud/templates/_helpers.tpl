{{/*
Chart name, overridable.
*/}}
{{- define "csspa.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Full name of the release's objects. With the guide's release name
(csi-secrets-store-provider-alibabacloud) it is just that name.
*/}}
{{- define "csspa.fullname" -}}
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

{{- define "csspa.selectorLabels" -}}
app.kubernetes.io/name: {{ include "csspa.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "csspa.labels" -}}
{{ include "csspa.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name (.Chart.Version | replace "+" "_") }}
{{- end -}}

{{/*
The ServiceAccount. Its default name is fixed (not derived from the release)
because RAM roles trust system:serviceaccount:<namespace>:csi-secrets-store-provider-alibabacloud.
*/}}
{{- define "csspa.serviceAccountName" -}}
{{- default "csi-secrets-store-provider-alibabacloud" .Values.serviceAccount.name -}}
{{- end -}}

{{- define "csspa.image" -}}
{{- $img := .Values.linux.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default (printf "v%s" .Chart.AppVersion) $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Where the RRSA token is projected; the provider's default ALICLOUD_OIDC_TOKEN_FILE. */}}
{{- define "csspa.rrsaTokenDir" -}}/var/run/secrets/tokens{{- end -}}
{{- define "csspa.rrsaTokenFile" -}}csi-secrets-store-provider-alibabacloud{{- end -}}

{{/* Where the ConfigMap with policy.yaml and kms-ca.crt is mounted. */}}
{{- define "csspa.configDir" -}}/etc/csi-secrets-store-provider-alibabacloud/config{{- end -}}

{{/* Where the ConfigMap with the FUSE view's classes is mounted. */}}
{{/*
The host directory shared with the provider for the FUSE view: the parent of
fuse.mountpoint. The view is mounted on a subdirectory of this volume, never
on the volume itself: inside a container the volume is a bind mount, and the
provider refuses to mount the view over a mount point.
*/}}
{{- define "csspa.fuseHostDir" -}}{{ dir (trimSuffix "/" .Values.fuse.mountpoint) }}{{- end -}}

{{- define "csspa.fuseClassDir" -}}/etc/csi-secrets-store-provider-alibabacloud/fuse-classes{{- end -}}

{{/*
Cache TTL: cache.ttl, else the driver's rotationPollInterval (so a rotation
poll sees a fresh value), else empty (the provider's default).
*/}}
{{- define "csspa.cacheTTL" -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- default $driver.rotationPollInterval .Values.cache.ttl -}}
{{- end -}}

{{/*
Keys of the incumbent chart (Alibaba's own provider, chart v0.6.0), accepted
so that its values file works unchanged; docs/migration.md has the mapping.
*/}}

{{/* The log format: logFormat, else json when the incumbent's logFormatJSON is true, else text. */}}
{{- define "csspa.logFormat" -}}
{{- if .Values.logFormat -}}{{ .Values.logFormat }}{{- else if .Values.logFormatJSON -}}json{{- else -}}text{{- end -}}
{{- end -}}

{{/* The port of /healthz and /readyz: the incumbent's linux.healthzPort when set, else linux.healthPort. */}}
{{- define "csspa.healthPort" -}}
{{- $hz := .Values.linux.healthzPort -}}
{{- if and (not (kindIs "invalid" $hz)) (ne (toString $hz) "") -}}{{ $hz | int }}{{- else -}}{{ .Values.linux.healthPort | int }}{{- end -}}
{{- end -}}

{{/*
rrsa.accountId as text. A value from --set is an int64 and prints whole; a
YAML number from a values file is a float64 that has already lost digits
(or prints as 1.2e+15), so csspa.validate refuses it.
*/}}
{{- define "csspa.rrsaAccountId" -}}
{{- $a := .Values.rrsa.accountId -}}
{{- if kindIs "string" $a -}}{{ $a }}{{- else if or (kindIs "int64" $a) (kindIs "int" $a) -}}{{ printf "%d" $a }}{{- end -}}
{{- end -}}

{{/* The environment the incumbent's rrsa.accountId / rrsa.clusterId set. */}}
{{- define "csspa.rrsaIdEnv" -}}
{{- $acct := include "csspa.rrsaAccountId" . -}}
{{- if and $acct .Values.rrsa.clusterId }}
- name: ALICLOUD_ACCOUNT_ID
  value: {{ $acct | quote }}
- name: ALICLOUD_CLUSTER_ID
  value: {{ .Values.rrsa.clusterId | quote }}
{{- end }}
{{- end -}}

{{/*
Checks of the incumbent's keys: each is refused, naming the key to set
instead, where taking it would not do what it says.
*/}}
{{- define "csspa.validateIncumbent" -}}
{{- if and .Values.logFormatJSON (eq (.Values.logFormat | default "") "text") -}}
{{- fail "logFormat=text and logFormatJSON=true (the incumbent chart's key) contradict each other: remove one, or set logFormat=json" -}}
{{- end -}}
{{- $hz := .Values.linux.healthzPort -}}
{{- if and (not (kindIs "invalid" $hz)) (ne (toString $hz) "") -}}
{{- if or (lt ($hz | int) 1) (gt ($hz | int) 65535) -}}
{{- fail (printf "linux.healthzPort (%v) is not a port number (1-65535)" $hz) -}}
{{- end -}}
{{- if and (ne (.Values.linux.healthPort | int) 8081) (ne (.Values.linux.healthPort | int) ($hz | int)) -}}
{{- fail (printf "linux.healthPort (%d) and linux.healthzPort (%v, the incumbent chart's key) differ: set only one of them" (.Values.linux.healthPort | int) $hz) -}}
{{- end -}}
{{- end -}}
{{- with .Values.linux.healthzPath -}}
{{- if ne . "/healthz" -}}
{{- fail (printf "linux.healthzPath=%s (the incumbent chart's key): this provider serves liveness at /healthz and readiness at /readyz, and their paths cannot be changed; remove linux.healthzPath (and point whatever polled %s at /healthz)" . .) -}}
{{- end -}}
{{- end -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- with .Values.linux.kubeletRootDir -}}
{{- if $driver.install -}}
{{- $driverDir := "/var/lib/kubelet" -}}
{{- if and $driver.linux $driver.linux.kubeletRootDir -}}{{- $driverDir = $driver.linux.kubeletRootDir -}}{{- end -}}
{{- if ne (trimSuffix "/" .) (trimSuffix "/" $driverDir) -}}
{{- fail (printf "linux.kubeletRootDir (%s, the incumbent chart's key) differs from the bundled driver's secrets-store-csi-driver.linux.kubeletRootDir (%s): the provider never uses kubelet's directory, the driver does; set secrets-store-csi-driver.linux.kubeletRootDir=%s and remove linux.kubeletRootDir" . $driverDir .) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $acct := .Values.rrsa.accountId -}}
{{- if kindIs "float64" $acct -}}
{{- fail (printf "rrsa.accountId is a YAML number (%v), which loses digits: quote it, e.g. accountId: \"<account ID>\"" $acct) -}}
{{- end -}}
{{- $acctText := include "csspa.rrsaAccountId" . -}}
{{- if or (and $acctText (not .Values.rrsa.clusterId)) (and (not $acctText) .Values.rrsa.clusterId) -}}
{{- fail "rrsa.accountId and rrsa.clusterId go together: the provider builds the OIDC provider ARN acs:ram::<accountId>:oidc-provider/ack-rrsa-<clusterId> from both; set both, or neither" -}}
{{- end -}}
{{- if $acctText -}}
{{- $names := keys (.Values.envVarsFromSecret | default dict) -}}
{{- range .Values.extraEnv -}}{{- $names = append $names .name -}}{{- end -}}
{{- range list "ALICLOUD_ACCOUNT_ID" "ALICLOUD_CLUSTER_ID" -}}
{{- if has . $names -}}
{{- fail (printf "%s is set both by rrsa.accountId/rrsa.clusterId and in extraEnv or envVarsFromSecret: set it in one place" .) -}}
{{- end -}}
{{- end -}}
{{- $built := printf "acs:ram::%s:oidc-provider/ack-rrsa-%s" $acctText .Values.rrsa.clusterId -}}
{{- range .Values.extraEnv -}}
{{- if and (has .name (list "ALICLOUD_OIDC_PROVIDER_ARN" "ALIBABA_CLOUD_OIDC_PROVIDER_ARN")) .value (ne .value $built) -}}
{{- fail (printf "extraEnv %s (%s) and rrsa.accountId/rrsa.clusterId (%s) name different OIDC providers; the ARN would win: keep only one" .name .value $built) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $repo := .Values.linux.image.repository | default "" -}}
{{- if eq (base $repo) "secrets-store-csi-driver-provider-alibaba-cloud" -}}
{{- fail (printf "linux.image.repository=%s is the incumbent's image (Alibaba's provider), which cannot run this chart's serve command and flags: set linux.image.repository (and tag) to this provider's image, built from the repository's Dockerfile (docs/install.md)" $repo) -}}
{{- end -}}
{{- end -}}

{{/*
Checks that fail the render with a message that says what to set.
*/}}
{{- define "csspa.validate" -}}
{{- include "csspa.validateIncumbent" . -}}
{{- if and .Values.events.enable (not .Values.serviceAccount.automountToken) -}}
{{- fail "events.enable=true posts Events with the provider's service account token, which serviceAccount.automountToken=false does not mount: set serviceAccount.automountToken=true, or events.enable=false" -}}
{{- end -}}
{{- range $name, $ref := .Values.envVarsFromSecret -}}
{{- if not (regexMatch "^[A-Za-z_][A-Za-z0-9_]*$" $name) -}}
{{- fail (printf "envVarsFromSecret: %q is not an environment variable name" $name) -}}
{{- end -}}
{{- if not (kindIs "map" $ref) -}}
{{- fail (printf "envVarsFromSecret.%s must be a map {secretKeyRef: <Secret name>, key: <key>}" $name) -}}
{{- end -}}
{{- if not $ref.secretKeyRef -}}
{{- fail (printf "envVarsFromSecret.%s.secretKeyRef is missing: set it to the name of the Secret (e.g. alibaba-credentials)" $name) -}}
{{- end -}}
{{- if not (kindIs "string" $ref.secretKeyRef) -}}
{{- fail (printf "envVarsFromSecret.%s.secretKeyRef must be the Secret's name (a string), as in the user guide" $name) -}}
{{- end -}}
{{- if not $ref.key -}}
{{- fail (printf "envVarsFromSecret.%s.key is missing: set it to the key inside Secret %s" $name $ref.secretKeyRef) -}}
{{- end -}}
{{- end -}}
{{- if .Values.rrsa.enable -}}
{{- $names := keys (.Values.envVarsFromSecret | default dict) -}}
{{- range .Values.extraEnv -}}{{- $names = append $names .name -}}{{- end -}}
{{- if include "csspa.rrsaIdEnv" . -}}{{- $names = concat $names (list "ALICLOUD_ACCOUNT_ID" "ALICLOUD_CLUSTER_ID") -}}{{- end -}}
{{- if not (or (has "ALICLOUD_ROLE_ARN" $names) (has "ALIBABA_CLOUD_ROLE_ARN" $names)) -}}
{{- fail "rrsa.enable=true needs the RAM role to assume: set envVarsFromSecret.ALICLOUD_ROLE_ARN (e.g. {secretKeyRef: alibaba-credentials, key: rolearn})" -}}
{{- end -}}
{{- /* The provider builds the ARN from ALICLOUD_ACCOUNT_ID + ALICLOUD_CLUSTER_ID when ALICLOUD_OIDC_PROVIDER_ARN is unset (auth/env.go). */ -}}
{{- $oidcARN := or (has "ALICLOUD_OIDC_PROVIDER_ARN" $names) (has "ALIBABA_CLOUD_OIDC_PROVIDER_ARN" $names) -}}
{{- $oidcIDs := and (has "ALICLOUD_ACCOUNT_ID" $names) (has "ALICLOUD_CLUSTER_ID" $names) -}}
{{- if not (or $oidcARN $oidcIDs) -}}
{{- fail "rrsa.enable=true needs the cluster's OIDC provider: set envVarsFromSecret.ALICLOUD_OIDC_PROVIDER_ARN (e.g. {secretKeyRef: alibaba-credentials, key: oidcproviderarn}), or rrsa.accountId and rrsa.clusterId (or ALICLOUD_ACCOUNT_ID and ALICLOUD_CLUSTER_ID in extraEnv)" -}}
{{- end -}}
{{- end -}}
{{- if and .Values.fuse.enabled .Values.denyProviderIdentity -}}
{{- fail "fuse.enabled: the FUSE view reads with the provider's own identity, which denyProviderIdentity=true forbids: set only one" -}}
{{- end -}}
{{- if and .Values.rrsa.enable .Values.denyProviderIdentity -}}
{{- fail "rrsa.enable gives the provider an identity that denyProviderIdentity=true forbids it to use: set only one" -}}
{{- end -}}
{{- if not (has (.Values.logFormat | default "") (list "" "text" "json")) -}}
{{- fail (printf "logFormat must be text or json, not %q" .Values.logFormat) -}}
{{- end -}}
{{- if .Values.fuse.enabled -}}
{{- if not .Values.fuse.classes -}}
{{- fail "fuse.enabled=true needs fuse.classes: a map of file name -> SecretProviderClass manifest to show in the view" -}}
{{- end -}}
{{- range $file, $class := .Values.fuse.classes -}}
{{- if not (regexMatch "^[A-Za-z0-9][A-Za-z0-9._-]*$" $file) -}}
{{- fail (printf "fuse.classes: %q is not a plain file name" $file) -}}
{{- end -}}
{{- end -}}
{{- $mp := include "csspa.fuseHostDir" . -}}
{{- $pd := trimSuffix "/" .Values.linux.providersDir -}}
{{- if or (eq $mp $pd) (hasPrefix (printf "%s/" $pd) $mp) (hasPrefix (printf "%s/" $mp) $pd) -}}
{{- fail (printf "fuse.mountpoint's directory (%s) and linux.providersDir (%s) overlap: give the view a directory of its own" $mp .Values.linux.providersDir) -}}
{{- end -}}
{{- if has $mp (list "/" "/var" "/run" "/var/run" "/var/lib" "/var/lib/kubelet" "/etc" "/usr" "/opt" "/home" "/root" "/srv" "/mnt" "/media" "/tmp" "/var/tmp" "/dev" "/proc" "/sys" "/boot") -}}
{{- fail (printf "fuse.mountpoint (%s): its parent directory %s is shared with the host (hostPath, Bidirectional propagation); choose a mountpoint inside a directory of its own, e.g. /var/run/csi-secrets-store-provider-alibabacloud/fuse" .Values.fuse.mountpoint $mp) -}}
{{- end -}}
{{- end -}}
{{- $driver := index .Values "secrets-store-csi-driver" | default dict -}}
{{- if and $driver.install $driver.linux -}}
{{- if and $driver.linux.providersDir (ne $driver.linux.providersDir .Values.linux.providersDir) -}}
{{- fail (printf "linux.providersDir (%s) and secrets-store-csi-driver.linux.providersDir (%s) differ: the driver would not find alibabacloud.sock" .Values.linux.providersDir $driver.linux.providersDir) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
The binary's common options of `serve`: where to fetch from, how to cache,
how to log. The socket, probe and policy flags are in daemonset.yaml.
*/}}
{{- define "csspa.commonArgs" -}}
{{- if .Values.regionId }}
- --region={{ .Values.regionId }}
{{- end }}
{{- with .Values.endpoints.kms }}
- --kms-endpoint={{ . }}
{{- end }}
{{- with .Values.endpoints.oos }}
- --oos-endpoint={{ . }}
{{- end }}
{{- with .Values.endpoints.sts }}
- --sts-endpoint={{ . }}
{{- end }}
{{- with .Values.allowedKmsEndpoints }}
- --allowed-kms-endpoints={{ join "," . }}
{{- end }}
{{- if .Values.kmsCACert }}
- --kms-ca-file={{ include "csspa.configDir" . }}/kms-ca.crt
{{- end }}
{{- with (include "csspa.cacheTTL" .) }}
- --cache-ttl={{ . }}
{{- end }}
{{- with .Values.cache.maxStale }}
- --max-stale={{ . }}
{{- end }}
{{- /* The driver refuses a response over its --max-call-recv-msg-size: the
provider refuses it first, naming the files, at the same size. */}}
{{- with (index .Values "secrets-store-csi-driver" | default dict).maxCallRecvMsgSize }}
- --max-response-bytes={{ . | int64 }}
{{- end }}
{{- with .Values.throttle.maxConcurrentFetches }}
- --max-concurrent-fetches={{ . }}
{{- end }}
{{- with .Values.throttle.kms.qps }}
- --kms-qps={{ . }}
{{- end }}
{{- with .Values.throttle.kms.burst }}
- --kms-burst={{ . }}
{{- end }}
{{- with .Values.throttle.oos.qps }}
- --oos-qps={{ . }}
{{- end }}
{{- with .Values.throttle.oos.burst }}
- --oos-burst={{ . }}
{{- end }}
- --log-format={{ include "csspa.logFormat" . }}
- -v={{ .Values.logVerbosity | int }}
{{- end -}}

{{/*
The FUSE debug view, served by `serve` itself from its own cache: nothing
unless fuse.enabled. Empty durations leave the provider's defaults.
*/}}
{{- define "csspa.fuseArgs" -}}
{{- if .Values.fuse.enabled }}
- --fuse-mountpoint={{ .Values.fuse.mountpoint }}
{{- $dir := include "csspa.fuseClassDir" . }}
{{- range $file, $class := .Values.fuse.classes }}
- --fuse-class={{ $dir }}/{{ $file }}
{{- end }}
- --fuse-uid={{ .Values.fuse.uid | int }}
- --fuse-gid={{ .Values.fuse.gid | int }}
{{- if .Values.fuse.allowOther }}
- --fuse-allow-other
{{- end }}
{{- if .Values.fuse.noOpen }}
- --fuse-no-open
{{- end }}
{{- with .Values.fuse.lookupTimeout }}
- --fuse-lookup-timeout={{ . }}
{{- end }}
{{- with .Values.fuse.kernelCacheTimeout }}
- --fuse-kernel-cache-timeout={{ . }}
{{- end }}
{{- with .Values.fuse.shutdownGrace }}
- --fuse-shutdown-grace={{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Credential environment: the guide's envVarsFromSecret, the RRSA token file,
the incumbent's rrsa.accountId/clusterId, extraEnv.
*/}}
{{- define "csspa.env" -}}
{{- range $name, $ref := .Values.envVarsFromSecret }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.secretKeyRef }}
      key: {{ $ref.key | quote }}
{{- end }}
{{- if .Values.rrsa.enable }}
- name: ALICLOUD_OIDC_TOKEN_FILE
  value: {{ include "csspa.rrsaTokenDir" . }}/{{ include "csspa.rrsaTokenFile" . }}
{{- end }}
{{- include "csspa.rrsaIdEnv" . }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Volumes of the provider: the RRSA token, the policy, the KMS CA, /tmp.
*/}}
{{- define "csspa.commonVolumes" -}}
- name: tmp
  emptyDir:
    medium: Memory
    sizeLimit: 16Mi
{{- if .Values.rrsa.enable }}
- name: rrsa-token
  projected:
    defaultMode: 0400
    sources:
      - serviceAccountToken:
          audience: sts.aliyuncs.com
          expirationSeconds: {{ .Values.rrsa.tokenExpirationSeconds | int }}
          path: {{ include "csspa.rrsaTokenFile" . }}
{{- end }}
{{- if or .Values.policy .Values.kmsCACert }}
- name: config
  configMap:
    name: {{ include "csspa.fullname" . }}-config
{{- end }}
{{- end -}}

{{- define "csspa.commonVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.rrsa.enable }}
- name: rrsa-token
  mountPath: {{ include "csspa.rrsaTokenDir" . }}
  readOnly: true
{{- end }}
{{- if or .Values.policy .Values.kmsCACert }}
- name: config
  mountPath: {{ include "csspa.configDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
