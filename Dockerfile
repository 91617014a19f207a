# Image of csi-secrets-store-provider-alibabacloud, the Secrets Store CSI
# Driver provider for Alibaba Cloud KMS Secrets Manager and OOS encrypted
# parameters. The Helm chart in charts/ runs it as a DaemonSet (`serve`).
#
#   docker build --build-arg VERSION=v0.1.0 --build-arg COMMIT=$(git rev-parse HEAD) -t <registry>/csi-secrets-store-provider-alibabacloud:v0.1.0 .
#
# Stage 1 builds one static binary (CGO off) with the pinned Go toolchain.
# Stage 2 is FROM scratch: the binary and a CA bundle for the TLS calls to
# KMS, OOS and STS, nothing else. hack/image/test.sh builds and runs this
# final stage in CI from a binary built the same way.

ARG GO_VERSION=1.26.8

FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
# Module downloads are cached in their own layer: they change less often than the code.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
# Version stamping: `csi-secrets-store-provider-alibabacloud version` prints these.
ARG VERSION=dev
ARG COMMIT=unknown
ARG TARGETOS=linux
ARG TARGETARCH=amd64
# The rootfs of the final image is assembled here, so stage 2 is a single COPY.
RUN mkdir -p /out/rootfs/etc/ssl/certs \
 && cp /etc/ssl/certs/ca-certificates.crt /out/rootfs/etc/ssl/certs/ca-certificates.crt \
 && CGO_ENABLED=0 GOOS="${TARGETOS}" GOARCH="${TARGETARCH}" \
    go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION} -X main.commit=${COMMIT}" \
      -o /out/rootfs/csi-secrets-store-provider-alibabacloud \
      ./cmd/csi-secrets-store-provider-alibabacloud

FROM scratch
COPY --from=build /out/rootfs/ /
# The provider creates its socket (mode 0600) in the root-owned hostPath
# /var/run/secrets-store-csi-providers that the driver also mounts, so it runs
# as uid 0. The chart drops every capability, forbids privilege escalation and
# mounts the root filesystem read-only, so uid 0 holds no extra power.
USER 0:0
ENTRYPOINT ["/csi-secrets-store-provider-alibabacloud"]
CMD ["serve"]
