// Package auth owns who is asking: it turns the provider's environment, a
// Mount's nodePublishSecretRef and a pod's service-account token into an
// Identity (a credentials-go Credential plus a fingerprint that keys the
// cache), caches identities so STS is asked once per session and not once per
// Mount, and knows nothing of secrets.
package auth

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/aliyun/credentials-go/credentials"
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
}

// String describes the identity without secrets.
func (i *Identity) String() string {
	if i == nil {
		return "<no identity>"
	}
	return string(i.Mode) + " " + i.Principal
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
	cfg := &credentials.Config{Type: strPtr("access_key"), AccessKeyId: strPtr(id), AccessKeySecret: strPtr(secret)}
	if token != "" {
		cfg.Type = strPtr("sts")
		cfg.SecurityToken = strPtr(token)
	}
	cred, err := credentials.NewCredential(cfg)
	if err != nil {
		return nil, err
	}
	return &Identity{
		Mode:        mode,
		Fingerprint: Fingerprint(string(ModeStatic), id, secret, token),
		Principal:   "AccessKey " + MaskKeyID(id),
		Reason:      reason,
		Credential:  cred,
	}, nil
}

func strPtr(s string) *string { return &s }
