package auth

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
)

// Keys of a nodePublishSecretRef Secret (MountRequest.secrets).
const (
	SecretAccessKey    = "access_key"
	SecretAccessSecret = "access_secret"
	SecretRoleArn      = "role_arn"
)

// MountInfo is what a Mount tells auth about the caller. All of it is
// untrusted except what kubelet sets (pod name, namespace, service account).
type MountInfo struct {
	PodName        string
	PodNamespace   string
	PodUID         string
	ServiceAccount string
	// Secrets is the nodePublishSecretRef data (may hold the token key too).
	Secrets map[string]string
	// Attributes is the whole attribute map (parameters + volume context).
	Attributes map[string]string
}

// Config is how the provider's own identity is found.
type Config struct {
	// Getenv reads the environment (os.Getenv when nil); tests inject maps.
	Getenv func(string) string
	// STSEndpoint overrides STS (host[:port], HTTPS). Empty: regional VPC STS.
	STSEndpoint string
	// Region is the provider's region, for the default STS endpoint.
	Region string
}

// ErrNoCredentials says no credential source is configured.
var ErrNoCredentials = errors.New("no credentials: set ACCESS_KEY_ID and SECRET_ACCESS_KEY (or ALIBABA_CLOUD_ACCESS_KEY_ID/ALIBABA_CLOUD_ACCESS_KEY_SECRET), enable RRSA, grant the worker RAM role, or give the volume a nodePublishSecretRef with access_key and access_secret")

// Resolver picks the identity of each Mount and caches identities by
// fingerprint, so credential providers (and their STS sessions) are built once
// and reused by every Mount with the same credential.
type Resolver struct {
	cfg    Config
	mu     sync.Mutex
	byFP   map[string]*Identity
	base   *Identity
	baseEr error
	once   sync.Once
}

// NewResolver returns a resolver for the provider's environment.
func NewResolver(cfg Config) *Resolver {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	return &Resolver{cfg: cfg, byFP: map[string]*Identity{}}
}

func (r *Resolver) env(names ...string) string {
	for _, n := range names {
		if v := strings.TrimSpace(r.cfg.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

// Resolve returns the identity for one Mount. Precedence (documented in
// docs/credentials.md): a nodePublishSecretRef, then the provider's own
// identity from its environment.
func (r *Resolver) Resolve(ctx context.Context, m MountInfo) (*Identity, error) {
	if id, ok, err := r.nodePublish(m); ok || err != nil {
		return id, err
	}
	return r.Base(ctx)
}

func (r *Resolver) nodePublish(m MountInfo) (*Identity, bool, error) {
	ak, sk := strings.TrimSpace(m.Secrets[SecretAccessKey]), strings.TrimSpace(m.Secrets[SecretAccessSecret])
	if ak == "" && sk == "" {
		return nil, false, nil
	}
	if ak == "" || sk == "" {
		return nil, true, fmt.Errorf("nodePublishSecretRef: the Secret must hold both %q and %q (found only %q)", SecretAccessKey, SecretAccessSecret, presentKey(ak, sk))
	}
	id, err := r.intern(Fingerprint(string(ModeStatic), ak, sk, ""), func() (*Identity, error) {
		return StaticAccessKey(ModeNodePublish, ak, sk, "", "the volume's nodePublishSecretRef holds access_key and access_secret")
	})
	return id, true, err
}

func presentKey(ak, sk string) string {
	if ak != "" {
		return SecretAccessKey
	}
	return SecretAccessSecret
}

// Base is the provider's own identity, resolved once.
func (r *Resolver) Base(_ context.Context) (*Identity, error) {
	r.once.Do(func() {
		ak := r.env("ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID")
		sk := r.env("SECRET_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET")
		switch {
		case ak != "" && sk != "":
			r.base, r.baseEr = r.intern(Fingerprint(string(ModeStatic), ak, sk, ""), func() (*Identity, error) {
				return StaticAccessKey(ModeEnvAccessKey, ak, sk, "", "ACCESS_KEY_ID and SECRET_ACCESS_KEY are set")
			})
		case ak != "" || sk != "":
			r.baseEr = errors.New("credentials: only one of the AccessKey id and secret is set; set both ACCESS_KEY_ID and SECRET_ACCESS_KEY")
		default:
			r.baseEr = ErrNoCredentials
		}
	})
	return r.base, r.baseEr
}

// intern returns the cached identity for fp, building it once.
func (r *Resolver) intern(fp string, build func() (*Identity, error)) (*Identity, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if id, ok := r.byFP[fp]; ok {
		return id, nil
	}
	id, err := build()
	if err != nil {
		return nil, err
	}
	id.Fingerprint = fp
	r.byFP[fp] = id
	return id, nil
}
