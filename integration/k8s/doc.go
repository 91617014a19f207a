// Package k8s holds the tests of what ships around the binary: the Helm chart
// in charts/csi-secrets-store-provider-alibabacloud (linted and rendered with
// a real helm v3, with the upstream secrets-store-csi-driver chart copied from
// the Go module cache into a temporary copy), the manifests in examples/, and
// the contract between the chart's DaemonSet and the provider binary.
//
// It is a Go module of its own so that k8s.io/api and the driver's API types
// stay out of the provider's go.mod. Run it from this directory:
//
//	../../hack/chart/install-helm.sh   # once; helm v3.22.0 into .tools/bin
//	go test ./...
//
// helm is found through $HELM, then <repo>/.tools/bin/helm, then PATH. When
// it is missing the chart tests fail if CI=true and are skipped otherwise.
package k8s
