package auth

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/kube"
)

// KubeServiceAccounts reads the role annotation of service accounts from
// the API server (the chart grants get on serviceaccounts, nothing else),
// remembering each answer for a short while so a burst of Mounts costs one
// read. It uses client-go's configuration and authenticated transport
// (in-cluster token, rotated by kubelet, and CA) but no typed clientset:
// one GET does not justify linking every API group's scheme.
type KubeServiceAccounts struct {
	host string
	hc   *http.Client
	ttl  time.Duration
	now  func() time.Time

	mu    sync.Mutex
	cache map[string]saEntry
}

type saEntry struct {
	role string
	at   time.Time
}

// InClusterServiceAccounts uses the pod's own service account
// (rest.InClusterConfig).
func InClusterServiceAccounts() (*KubeServiceAccounts, error) {
	cfg, err := rest.InClusterConfig()
	if err != nil {
		return nil, err
	}
	return NewKubeServiceAccounts(cfg)
}

// NewKubeServiceAccounts reads service accounts with cfg.
func NewKubeServiceAccounts(cfg *rest.Config) (*KubeServiceAccounts, error) {
	host, hc, err := kube.Client(cfg, 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &KubeServiceAccounts{host: host, hc: hc, ttl: 30 * time.Second, now: time.Now, cache: map[string]saEntry{}}, nil
}

// RoleARN returns the ack.alibabacloud.com/role-arn annotation of
// namespace/name ("" when absent).
func (k *KubeServiceAccounts) RoleARN(ctx context.Context, namespace, name string) (string, error) {
	key := namespace + "/" + name
	now := k.now()
	k.mu.Lock()
	if e, ok := k.cache[key]; ok && now.Sub(e.at) < k.ttl {
		k.mu.Unlock()
		return e.role, nil
	}
	k.mu.Unlock()

	u := k.host + "/api/v1/namespaces/" + url.PathEscape(namespace) + "/serviceaccounts/" + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := k.hc.Do(req)
	if err != nil {
		return "", fmt.Errorf("get service account: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return "", fmt.Errorf("get service account: %w", err)
	}
	switch resp.StatusCode {
	case http.StatusOK:
	case http.StatusNotFound:
		return "", errorf(ErrInvalid, "per-pod RRSA: service account %s/%s does not exist", namespace, name)
	case http.StatusForbidden, http.StatusUnauthorized:
		return "", errorf(ErrDenied, "per-pod RRSA: the provider may not read service account %s/%s (HTTP %d): grant its service account get on serviceaccounts (chart value rbac.install=true)", namespace, name, resp.StatusCode)
	default:
		return "", fmt.Errorf("get service account %s/%s: HTTP %d", namespace, name, resp.StatusCode)
	}
	var sa struct {
		Metadata struct {
			Annotations map[string]string `json:"annotations"`
		} `json:"metadata"`
	}
	if err := json.Unmarshal(body, &sa); err != nil {
		return "", fmt.Errorf("get service account %s/%s: the API server's answer is not a ServiceAccount", namespace, name)
	}
	role := sa.Metadata.Annotations[RoleAnnotation]
	k.mu.Lock()
	if len(k.cache) > 4096 {
		clear(k.cache)
	}
	k.cache[key] = saEntry{role: role, at: now}
	k.mu.Unlock()
	return role, nil
}
