package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// BaseResolver finds the provider's own identity (*auth.Resolver).
type BaseResolver interface {
	Base(ctx context.Context) (*auth.Identity, error)
}

// HowToConfigure names every way to give the provider credentials.
const HowToConfigure = "configure one: ACCESS_KEY_ID and SECRET_ACCESS_KEY; or RRSA, ALICLOUD_ROLE_ARN and ALICLOUD_OIDC_PROVIDER_ARN (chart: rrsa.enable=true); " +
	"or run on an ECS node whose worker RAM role may read the secrets; or give each volume its own identity, " +
	"usePodServiceAccountToken: \"true\" in the SecretProviderClass (per-pod RRSA) or a nodePublishSecretRef; " +
	"or run with --deny-provider-identity if every volume must bring its own"

// NoCredentialsError is CheckCredentials' error when no credential source
// is configured and the fallback, the worker RAM role, cannot be read.
type NoCredentialsError struct{ Err error }

func (e NoCredentialsError) Error() string {
	return fmt.Sprintf("no credentials: no AccessKey or RRSA is configured, and the worker RAM role could not be read from ECS metadata (%v); %s", e.Err, HowToConfigure)
}

func (e NoCredentialsError) Unwrap() error { return e.Err }

// CheckCredentials resolves the provider's own identity and asks its
// credential for a key, within timeout. It calls ECS metadata or STS when
// the credential needs it: run it from Credentials, never from a probe.
func CheckCredentials(ctx context.Context, r BaseResolver, timeout time.Duration) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	id, err := r.Base(cctx)
	if err != nil {
		return "", err
	}
	if err := id.Usable(cctx); err != nil {
		if id.Mode == auth.ModeECSRAMRole {
			// The identity nothing configured falls back to.
			return "", NoCredentialsError{err}
		}
		return "", fmt.Errorf("%s: %w", id, err)
	}
	return id.String(), nil
}

// Credentials checks the provider's own credentials in the background, as
// the cache refreshes its entries: once at start, then every 30s, or every
// 5s while they fail. The probes read the last result.
type Credentials struct {
	check              func(context.Context) (string, error)
	okEvery, failEvery time.Duration
	// first is called with the first result (the start line).
	first func(detail string, err error)

	checked chan struct{} // closed after the first check
	mu      sync.Mutex
	detail  string
	err     error
}

// NewCredentials checks r's base identity with CheckCredentials. When the
// first check finds no credentials at all, it logs a warning saying how to
// configure them.
func NewCredentials(r BaseResolver, log *slog.Logger) *Credentials {
	return &Credentials{
		check:     func(ctx context.Context) (string, error) { return CheckCredentials(ctx, r, 3*time.Second) },
		okEvery:   30 * time.Second,
		failEvery: 5 * time.Second,
		first: func(_ string, err error) {
			var ns NoCredentialsError
			if errors.As(err, &ns) {
				log.Warn("no credentials: no AccessKey or RRSA is configured and the worker RAM role cannot be read from ECS metadata, so volumes without an identity of their own fail to mount and /readyz fails; "+HowToConfigure,
					"error", ns.Err.Error())
			}
		},
		checked: make(chan struct{}),
	}
}

// Start runs the checks until the returned stop is called; stop waits for
// the check in flight (each is bounded by its own timeout).
func (c *Credentials) Start() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.run(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (c *Credentials) run(ctx context.Context) {
	for first := true; ; first = false {
		detail, err := c.check(ctx)
		if ctx.Err() != nil {
			return
		}
		c.mu.Lock()
		c.detail, c.err = detail, err
		c.mu.Unlock()
		wait := c.okEvery
		if err != nil {
			wait = c.failEvery
		}
		if first {
			// The start line comes before any probe's answer.
			if c.first != nil {
				c.first(detail, err)
			}
			close(c.checked)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// Result is the last check's, waiting for the first one until ctx ends.
func (c *Credentials) Result(ctx context.Context) (string, error) {
	select {
	case <-c.checked:
	case <-ctx.Done():
		return "", errors.New("not checked yet: the first check of the credentials is still running")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.detail, c.err
}
