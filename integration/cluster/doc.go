// Package cluster holds the end-to-end suite that runs the product the way
// users run it: a one-node Kubernetes (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler, containerd, kubelet) stood up on
// this machine by hack/cluster, the chart installed with `helm install`, a
// real kubelet asking the real Secrets Store CSI Driver for pods' inline
// volumes, and the driver calling the provider image over its socket. The
// Alibaba Cloud emulator runs in the test process on 127.0.0.1.
//
// It is a Go module of its own so that client-go and the driver's command
// stay out of the provider's go.mod. The node images' small programs live
// under cmd/. Run it with `make cluster-test` from the repository root; the
// tests skip (or fail with CI=true) when no cluster is up.
package cluster
