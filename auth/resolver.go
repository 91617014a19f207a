package auth

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
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
	// MetadataProxy is an HTTP proxy URL for the ECS metadata service
	// (100.100.100.200), used by tests to reach the emulator. Empty: direct.
	MetadataProxy string
	// ServiceAccounts reads the role annotation of a pod's service account
	// (per-pod RRSA without a roleArn parameter). Nil: only roleArn works.
	ServiceAccounts ServiceAccountRoles
	// DenyProviderIdentity refuses Mounts that would use the provider's own
	// identity: every volume must use per-pod RRSA or a nodePublishSecretRef.
	DenyProviderIdentity bool
	// Log receives warnings (nil: discarded). Never secrets.
	Log *slog.Logger
	// Now is the clock (time.Now when nil); tests move it.
	Now func() time.Time
	// OnRefresh is told of every new STS or metadata session (err nil) and
	// every failed attempt, by identity mode (metrics). Nil: nobody is. It
	// is called with the credential's lock held: it must not block.
	OnRefresh func(mode Mode, err error)
}

// ErrNoCredentials says no credential source is configured.
var ErrNoCredentials = &Error{Kind: ErrUnauthenticated, Message: "no credentials: the provider has no identity of its own (set ACCESS_KEY_ID and SECRET_ACCESS_KEY, or RRSA with ALICLOUD_ROLE_ARN and ALICLOUD_OIDC_PROVIDER_ARN, or grant the worker RAM role and leave ALIBABA_CLOUD_ECS_METADATA_DISABLED unset), and the volume has neither usePodServiceAccountToken: \"true\" nor a nodePublishSecretRef with access_key and access_secret"}

// Resolver picks the identity of each Mount and caches identities by
// fingerprint, so credential providers (and their STS sessions) are built once
// and reused by every Mount with the same credential.
type Resolver struct {
	cfg Config

	mu   sync.Mutex
	byFP map[string]*Identity

	baseMu sync.Mutex
	base   *Identity

	pods      podTokens
	exchanges singleflight.Group
}

// NewResolver returns a resolver for the provider's environment.
func NewResolver(cfg Config) *Resolver {
	if cfg.Getenv == nil {
		cfg.Getenv = os.Getenv
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	return &Resolver{cfg: cfg, byFP: map[string]*Identity{}, pods: podTokens{byToken: map[string]podToken{}, byFP: map[string]*podSession{}, onRefresh: cfg.OnRefresh}}
}

// Resolve returns the identity for one Mount, in the documented precedence:
// per-pod RRSA (when usePodServiceAccountToken is "true"; fails closed), then
// a nodePublishSecretRef, then the provider's own identity. The credential is
// ready when it returns: an STS or metadata failure is reported here, with
// its reason, not as a failure of every object.
func (r *Resolver) Resolve(ctx context.Context, m MountInfo) (*Identity, error) {
	usePod, err := podTokenRequested(m.Attributes)
	if err != nil {
		return nil, err
	}
	if usePod {
		return r.podRRSA(ctx, m)
	}
	if id, ok, err := r.nodePublish(m); ok || err != nil {
		if err != nil {
			return nil, err
		}
		if err := r.ready(id); err != nil {
			// Keep no identity that does not work: a stream of bogus
			// Secrets must not grow the map.
			r.forget(id.Fingerprint)
			return nil, err
		}
		return id, nil
	}
	if r.cfg.DenyProviderIdentity {
		return nil, errorf(ErrDenied, "this provider is run with --deny-provider-identity: the volume must bring its own identity, with usePodServiceAccountToken: \"true\" in the SecretProviderClass (per-pod RRSA) or a nodePublishSecretRef")
	}
	base, err := r.Base(ctx)
	if err != nil {
		return nil, err
	}
	id := base.with(base.Mode, "no usePodServiceAccountToken and no nodePublishSecretRef, so the provider's own identity: "+base.Reason)
	return id, r.ready(id)
}

// ready fetches the credential when it is missing or about to expire.
func (r *Resolver) ready(id *Identity) error {
	if err := id.ensure(); err != nil {
		var what string
		switch id.Mode {
		case ModeECSRAMRole:
			what = "the worker RAM role from ECS metadata failed"
		case ModeStatic, ModeEnvAccessKey, ModeNodePublish:
			what = "the AccessKey is unusable"
		default:
			what = "STS refused to issue credentials for " + id.Principal
		}
		return upstreamError(what, err)
	}
	return nil
}

// secret reads a nodePublishSecretRef key, case-insensitively.
func secret(m map[string]string, key string) string {
	if v, ok := m[key]; ok {
		return strings.TrimSpace(v)
	}
	for k, v := range m {
		if strings.EqualFold(k, key) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func (r *Resolver) nodePublish(m MountInfo) (*Identity, bool, error) {
	ak, sk := secret(m.Secrets, SecretAccessKey), secret(m.Secrets, SecretAccessSecret)
	role := secret(m.Secrets, SecretRoleArn)
	if ak == "" && sk == "" {
		if role != "" {
			return nil, true, errorf(ErrInvalid, "nodePublishSecretRef: the Secret has %q but no %q and %q to assume it with", SecretRoleArn, SecretAccessKey, SecretAccessSecret)
		}
		return nil, false, nil
	}
	if ak == "" || sk == "" {
		return nil, true, errorf(ErrInvalid, "nodePublishSecretRef: the Secret must hold both %q and %q (found only %q)", SecretAccessKey, SecretAccessSecret, presentKey(ak, sk))
	}
	if role == "" {
		id, err := r.intern(Fingerprint(string(ModeStatic), ak, sk, ""), func() (*Identity, error) {
			return StaticAccessKey(ModeNodePublish, ak, sk, "", "")
		})
		if err != nil {
			return nil, true, err
		}
		return id.with(ModeNodePublish, "the volume's nodePublishSecretRef holds access_key and access_secret"), true, nil
	}
	if !aliyun.ValidRoleArn(role) {
		return nil, true, errorf(ErrInvalid, "nodePublishSecretRef: %q %q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", SecretRoleArn, textutil.Truncate(role, 96))
	}
	id, err := r.intern(Fingerprint(string(ModeNodePublishRole), ak, sk, strings.ToLower(role)), func() (*Identity, error) {
		base, err := StaticAccessKey(ModeNodePublish, ak, sk, "", "")
		if err != nil {
			return nil, err
		}
		p, err := r.ramRole(base.provider, role, DefaultRoleSessionName, defaultSessionSeconds)
		if err != nil {
			return nil, err
		}
		return newIdentity(ModeNodePublishRole, "", role, "", p, r.cfg.OnRefresh), nil
	})
	if err != nil {
		return nil, true, err
	}
	return id.with(ModeNodePublishRole, fmt.Sprintf("the volume's nodePublishSecretRef holds access_key, access_secret and role_arn (AccessKey %s assumes the role)", MaskKeyID(ak))), true, nil
}

func presentKey(ak, sk string) string {
	if ak != "" {
		return SecretAccessKey
	}
	return SecretAccessSecret
}

// Base is the provider's own identity. It is built once from the
// environment (no network call); a configuration error is reported on every
// call until the environment (or the RRSA token file) is fixed.
func (r *Resolver) Base(_ context.Context) (*Identity, error) {
	r.baseMu.Lock()
	defer r.baseMu.Unlock()
	if r.base != nil {
		return r.base, nil
	}
	id, err := r.buildBase()
	if err != nil {
		return nil, err
	}
	r.base = id
	return id, nil
}

// AssumeRole assumes roleArn on top of base (a per-object
// crossAccountRoleArn). The assumed identity is built once per (base, role)
// and its session refreshed before it expires, so STS is called once per
// session, not per Mount or per object. It implements fetch.RoleAssumer.
func (r *Resolver) AssumeRole(_ context.Context, base *Identity, roleArn string) (*Identity, error) {
	if base == nil {
		return nil, errorf(ErrUnauthenticated, "crossAccountRoleArn: no base identity to assume %s with", roleArn)
	}
	if !aliyun.ValidRoleArn(roleArn) {
		return nil, errorf(ErrInvalid, "crossAccountRoleArn %q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", textutil.Truncate(roleArn, 96))
	}
	fp := Fingerprint(string(ModeCrossAccount), base.Fingerprint, strings.ToLower(roleArn))
	id, err := r.intern(fp, func() (*Identity, error) {
		p, err := r.ramRole(base.credentialsProvider(), roleArn, DefaultRoleSessionName, defaultSessionSeconds)
		if err != nil {
			return nil, err
		}
		return newIdentity(ModeCrossAccount, "", roleArn, "crossAccountRoleArn assumed on top of "+base.String(), p, r.cfg.OnRefresh), nil
	})
	if err != nil {
		return nil, err
	}
	if err := id.ensure(); err != nil {
		r.forget(fp) // a role that cannot be assumed is not kept
		return nil, upstreamError(fmt.Sprintf("crossAccountRoleArn: STS refused to let %s assume %s", base.String(), roleArn), err)
	}
	return id, nil
}

// forget drops an identity that failed, so only working ones are kept.
func (r *Resolver) forget(fp string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.byFP, fp)
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
	if len(r.byFP) >= maxIdentities {
		// Bounded: drop any other one; a Mount that needs it again
		// rebuilds it (one STS call at most for a role).
		for k := range r.byFP {
			delete(r.byFP, k)
			break
		}
	}
	r.byFP[fp] = id
	return id, nil
}

// maxIdentities bounds the identities kept (node-publish keys, roles).
const maxIdentities = 4096
