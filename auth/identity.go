// Package auth owns who is asking: it turns the provider's environment, a
// Mount's nodePublishSecretRef and a pod's service-account token into an
// Identity (a credentials-go Credential plus a fingerprint that keys the
// cache), caches identities so STS is asked once per session and not once per
// Mount, and knows nothing of secrets. It also holds the namespace policy
// (which namespace and service account may mount which object names) and the
// node's region from ECS metadata.
//
// # Precedence
//
// Resolve picks exactly one identity per Mount, in this order (the same as
// docs/credentials.md):
//
//  1. Per-pod RRSA, when the attribute usePodServiceAccountToken is "true":
//     the pod's own service-account token (audience sts.aliyuncs.com, passed
//     by the driver in csi.storage.k8s.io/serviceAccount.tokens, in secrets
//     or in attributes) is exchanged with AssumeRoleWithOIDC for the role in
//     the attribute roleArn, else in the annotation ack.alibabacloud.com/role-arn
//     of the pod's service account. A missing token or role fails the Mount:
//     there is never a fallback to another identity.
//  2. nodePublishSecretRef: the volume's Secret holds access_key and
//     access_secret, and optionally role_arn (then that role is assumed).
//  3. The provider's own identity, from its environment: an AccessKey pair
//     (ACCESS_KEY_ID/SECRET_ACCESS_KEY), which assumes ALICLOUD_ROLE_ARN when
//     set; else RRSA (ALICLOUD_ROLE_ARN + ALICLOUD_OIDC_PROVIDER_ARN and the
//     projected token file); else the worker's RAM role from ECS instance
//     metadata (hardened: token first, no IMDSv1 fallback). With
//     Config.DenyProviderIdentity this step is refused instead.
//
// A per-object crossAccountRoleArn assumes that role on top of whichever
// identity was chosen (Resolver.AssumeRole, the fetcher's RoleAssumer).
//
// Every STS-backed credential is built once per identity and refreshed by
// credentials-go shortly before it expires, behind a lock, so STS is called
// once per session however many Mounts use it. Pod tokens are kept in
// memory only, never written to disk or logged.
package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/aliyun/credentials-go/credentials"
	"github.com/aliyun/credentials-go/credentials/providers"
)

// Mode names how an identity was obtained; it is logged and used as a label.
type Mode string

const (
	ModeEnvAccessKey    Mode = "env-access-key"      // ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_ID
	ModeEnvAssumeRole   Mode = "access-key-role"     // AccessKey that assumes ALICLOUD_ROLE_ARN
	ModeRRSA            Mode = "rrsa"                // the provider's own projected token
	ModeECSRAMRole      Mode = "worker-ram-role"     // ECS instance metadata
	ModeNodePublish     Mode = "node-publish-secret" // nodePublishSecretRef access_key/access_secret
	ModeNodePublishRole Mode = "node-publish-secret-role"
	ModePodRRSA         Mode = "pod-rrsa"      // the pod's own service-account token
	ModeCrossAccount    Mode = "cross-account" // AssumeRole on top of another identity
	ModeStatic          Mode = "static"        // built by a test or by dev
)

// Identity is one credential and the fingerprint that keys everything cached
// for it. Two identities with different fingerprints never share a cache
// entry. It prints without secrets.
type Identity struct {
	Mode Mode
	// Fingerprint is a keyed hash of the whole credential (key id AND
	// secret, or role and token subject and base identity), never the raw
	// secret and never the key id alone.
	Fingerprint string
	// Principal is a non-secret description: a masked key id or a role ARN.
	Principal string
	// Reason says why this identity was chosen (debug log).
	Reason string
	// Credential signs requests; credentials-go refreshes STS sessions.
	Credential credentials.Credential

	// provider is Credential's provider, serialized: credentials-go
	// providers are not safe for concurrent use, and the lock makes
	// concurrent Mounts share one refresh (one STS call) instead of racing.
	provider providers.CredentialsProvider
}

// String describes the identity without secrets.
func (i *Identity) String() string {
	if i == nil {
		return "<no identity>"
	}
	return string(i.Mode) + " " + i.Principal
}

// with returns a copy that shares the credential (and therefore the
// fingerprint and its session) but says how this Mount got it.
func (i *Identity) with(mode Mode, reason string) *Identity {
	c := *i
	c.Mode, c.Reason = mode, reason
	return &c
}

// credentialsProvider returns a provider view of the identity, for chaining
// (AssumeRole on top of it).
func (i *Identity) credentialsProvider() providers.CredentialsProvider {
	if i.provider != nil {
		return i.provider
	}
	return &credentialProvider{&lockedCredential{c: i.Credential}}
}

// ensure makes sure the credential can be had now: a no-op for a static key
// or a live session, one STS or metadata call when the session is missing
// or about to expire. Its error says why, without secrets.
func (i *Identity) ensure() error {
	_, err := i.credentialsProvider().GetCredentials()
	return err
}

// Usable asks the credential for an AccessKey, bounded by ctx: for an STS
// based mode this is where a session is fetched or refreshed. credentials-go
// takes no context, so the call runs aside and is abandoned (it ends at its
// own HTTP timeouts) when ctx ends first. Nothing of the credential is
// returned or printed. Readiness and doctor use it to say whether the
// identity can sign a request before any secret is asked for.
func (i *Identity) Usable(ctx context.Context) error {
	if i == nil || i.Credential == nil {
		return errors.New("the identity has no credential")
	}
	done := make(chan error, 1)
	go func() {
		cm, err := i.Credential.GetCredential()
		if err == nil && (cm == nil || cm.AccessKeyId == nil || *cm.AccessKeyId == "") {
			err = errors.New("the credential yields no AccessKey id")
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("no credential within the check's deadline: %w", ctx.Err())
	}
}

// newIdentity wraps p in a lock and a credentials-go Credential; onRefresh
// (nil: none) is told of its new sessions and failures.
func newIdentity(mode Mode, fp, principal, reason string, p providers.CredentialsProvider, onRefresh func(Mode, error)) *Identity {
	lp := &lockedProvider{p: p, mode: mode, onRefresh: onRefresh}
	return &Identity{
		Mode: mode, Fingerprint: fp, Principal: principal, Reason: reason,
		Credential: credentials.FromCredentialsProvider(p.GetProviderName(), lp),
		provider:   lp,
	}
}

// lockedProvider serializes a credentials-go provider and reports each new
// session (a changed security token) or failure to onRefresh.
type lockedProvider struct {
	mu        sync.Mutex
	p         providers.CredentialsProvider
	mode      Mode
	onRefresh func(Mode, error) // Config.OnRefresh; nil: nobody is told
	lastToken string
}

func (l *lockedProvider) GetCredentials() (*providers.Credentials, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	c, err := l.p.GetCredentials()
	switch {
	case err != nil:
		l.observe(err)
	case c != nil && c.SecurityToken != "" && c.SecurityToken != l.lastToken:
		l.lastToken = c.SecurityToken
		l.observe(nil)
	}
	return c, err
}

func (l *lockedProvider) observe(err error) {
	if l.onRefresh != nil {
		l.onRefresh(l.mode, err)
	}
}

func (l *lockedProvider) GetProviderName() string { return l.p.GetProviderName() }

// lockedCredential and credentialProvider adapt an Identity built elsewhere
// (a test, dev) with only a Credential.
type lockedCredential struct {
	mu sync.Mutex
	c  credentials.Credential
}

type credentialProvider struct{ l *lockedCredential }

func (p *credentialProvider) GetCredentials() (*providers.Credentials, error) {
	p.l.mu.Lock()
	defer p.l.mu.Unlock()
	m, err := p.l.c.GetCredential()
	if err != nil {
		return nil, err
	}
	out := &providers.Credentials{ProviderName: p.GetProviderName()}
	if m.AccessKeyId != nil {
		out.AccessKeyId = *m.AccessKeyId
	}
	if m.AccessKeySecret != nil {
		out.AccessKeySecret = *m.AccessKeySecret
	}
	if m.SecurityToken != nil {
		out.SecurityToken = *m.SecurityToken
	}
	return out, nil
}

func (p *credentialProvider) GetProviderName() string {
	if t := p.l.c.GetType(); t != nil {
		return *t
	}
	return "credential"
}

// fingerprintKey is random per process: fingerprints are only compared
// inside one process, and cannot be reversed or matched from outside.
var fingerprintKey = func() []byte {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		panic("auth: no randomness for the fingerprint key: " + err.Error())
	}
	return k
}()

// Fingerprint is a keyed hash of its parts, which may include secrets.
func Fingerprint(parts ...string) string {
	m := hmac.New(sha256.New, fingerprintKey)
	for _, p := range parts {
		m.Write([]byte(p))
		m.Write([]byte{0})
	}
	return hex.EncodeToString(m.Sum(nil)[:16])
}

// MaskKeyID shows the first 4 and last 3 characters of an AccessKey id.
func MaskKeyID(id string) string {
	if len(id) <= 8 {
		return strings.Repeat("*", len(id))
	}
	return id[:4] + "****" + id[len(id)-3:]
}

// StaticAccessKey builds an identity from an AccessKey pair (and an optional
// STS token).
func StaticAccessKey(mode Mode, id, secret, token, reason string) (*Identity, error) {
	var p providers.CredentialsProvider
	var err error
	if token != "" {
		p, err = providers.NewStaticSTSCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).WithSecurityToken(token).Build()
	} else {
		p, err = providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(id).WithAccessKeySecret(secret).Build()
	}
	if err != nil {
		return nil, errorf(ErrInvalid, "AccessKey: %v", err)
	}
	return newIdentity(mode, Fingerprint(string(ModeStatic), id, secret, token), "AccessKey "+MaskKeyID(id), reason, p, nil), nil
}
