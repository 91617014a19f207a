package auth

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// MetadataHost is the ECS instance metadata service. Its address is fixed;
// tests reach an emulator through an HTTP proxy (Metadata.Proxy).
const MetadataHost = "100.100.100.200"

// Metadata reads the ECS instance metadata service the hardened way: a
// session token first (PUT /latest/api/token), then GETs carrying it, and no
// tokenless fallback.
type Metadata struct {
	// Proxy is an HTTP proxy URL to reach the service through (tests).
	// Empty: direct, ignoring HTTP_PROXY (metadata is link-local).
	Proxy string
	// Timeout bounds the whole lookup. Default 3s.
	Timeout time.Duration
}

// Region returns the node's region id (/latest/meta-data/region-id).
func (md Metadata) Region(ctx context.Context) (string, error) {
	v, err := md.get(ctx, "/latest/meta-data/region-id")
	if err != nil {
		return "", err
	}
	v = strings.TrimSpace(v)
	if !aliyun.ValidRegion(v) {
		return "", fmt.Errorf("ECS metadata returned %q as the region id", textutil.Truncate(v, 64))
	}
	return v, nil
}

func (md Metadata) get(ctx context.Context, path string) (string, error) {
	timeout := md.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tr := &http.Transport{Proxy: nil, DisableKeepAlives: true}
	if md.Proxy != "" {
		u, err := url.Parse(md.Proxy)
		if err != nil || u.Host == "" {
			return "", fmt.Errorf("metadata proxy %q is not a URL", md.Proxy)
		}
		tr.Proxy = http.ProxyURL(u)
	}
	c := &http.Client{Transport: tr}
	defer tr.CloseIdleConnections()

	req, err := http.NewRequestWithContext(ctx, http.MethodPut, "http://"+MetadataHost+"/latest/api/token", nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-aliyun-ecs-metadata-token-ttl-seconds", "60")
	tok, err := do(c, req)
	if err != nil {
		return "", fmt.Errorf("ECS metadata token (PUT http://%s/latest/api/token): %w", MetadataHost, err)
	}
	req, err = http.NewRequestWithContext(ctx, http.MethodGet, "http://"+MetadataHost+path, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("X-aliyun-ecs-metadata-token", tok)
	v, err := do(c, req)
	if err != nil {
		return "", fmt.Errorf("ECS metadata (GET http://%s%s): %w", MetadataHost, path, err)
	}
	return v, nil
}

func do(c *http.Client, req *http.Request) (string, error) {
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("HTTP %d: %s", resp.StatusCode, textutil.Truncate(strings.TrimSpace(string(b)), 120))
	}
	return string(b), nil
}
