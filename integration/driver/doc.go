// Package driver runs the real Secrets Store CSI Driver (sigs.k8s.io/secrets-store-csi-driver
// v1.6.x) in the test process against the provider's real `serve` binary and
// the Alibaba Cloud emulator.
//
// Two levels, both in the tests of this package:
//
//   - node_test.go, secretobjects_test.go: the driver's node server
//     (secretsstore.NewSecretsStoreDriver(...).Run on a unix socket) with a
//     controller-runtime fake client, driven over CSI gRPC as kubelet does:
//     NodePublishVolume mounts a real tmpfs (root only) and the driver writes
//     our files with its atomic writer; NodeUnpublishVolume cleans up.
//   - sync_test.go, dryrun_test.go, events_test.go: a real kube-apiserver and
//     etcd through controller-runtime's envtest (KUBEBUILDER_ASSETS, see
//     hack/k8s/setup-envtest.sh): the driver's secret-sync controller turns
//     our mounts into Kubernetes Secrets, every chart rendering and example
//     passes a server-side dry run, and `serve --emit-events` posts one
//     SecretRotated Event per pod with the chart's own RBAC.
//
// This is a module of its own so that the driver, controller-runtime and
// envtest stay out of the provider's go.mod. docs/reliability-driver.md says
// what is covered and how to run it.
package driver
