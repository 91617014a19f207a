// Package kube is the provider's one way to reach the Kubernetes API
// server: client-go's configuration (in-cluster, or a kubeconfig file for
// tests and development) and its authenticated HTTP client (token rotated by
// kubelet, CA), but no typed clientset: the provider reads a ServiceAccount
// (per-pod RRSA) and posts Events (rotation events), which plain JSON over
// one client does without linking every API group's scheme.
package kube

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// UserAgent is what the provider sends to the API server.
const UserAgent = "csi-secrets-store-provider-alibabacloud"

// Config is the API server configuration: the kubeconfig file when one is
// given, else the pod's own service account (rest.InClusterConfig).
func Config(kubeconfig string) (*rest.Config, error) {
	if kubeconfig != "" {
		cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("--kubeconfig %s: %w", kubeconfig, err)
		}
		return cfg, nil
	}
	return rest.InClusterConfig()
}

// Client returns the API server's base URL (scheme, host and API path, no
// trailing slash) and an HTTP client authenticated as cfg says. A request
// with no deadline of its own is bounded by timeout (5s when 0).
func Client(cfg *rest.Config, timeout time.Duration) (base string, hc *http.Client, err error) {
	cfg = rest.CopyConfig(cfg)
	if cfg.Timeout == 0 {
		cfg.Timeout = timeout
		if cfg.Timeout == 0 {
			cfg.Timeout = 5 * time.Second
		}
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = UserAgent
	}
	hc, err = rest.HTTPClientFor(cfg)
	if err != nil {
		return "", nil, err
	}
	host := strings.TrimRight(cfg.Host, "/")
	if !strings.Contains(host, "://") {
		host = "https://" + host
	}
	return host + strings.TrimRight(cfg.APIPath, "/"), hc, nil
}
