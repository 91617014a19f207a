package auth

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"

	"github.com/aliyun/credentials-go/credentials/providers"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/aliyun"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// Environment of the provider's own identity. The first name of each list is
// the user guide's; the ALIBABA_CLOUD_* names are credentials-go's standard
// ones and work too. Only this package reads them (docs/credentials.md is
// their public list), so they are not exported.
var (
	envAccessKeyID       = []string{"ACCESS_KEY_ID", "ALIBABA_CLOUD_ACCESS_KEY_ID"}
	envAccessKeySecret   = []string{"SECRET_ACCESS_KEY", "ALIBABA_CLOUD_ACCESS_KEY_SECRET"}
	envRoleARN           = []string{"ALICLOUD_ROLE_ARN", "ALIBABA_CLOUD_ROLE_ARN"}
	envRoleSessionName   = []string{"ALICLOUD_ROLE_SESSION_NAME", "ALIBABA_CLOUD_ROLE_SESSION_NAME"}
	envRoleSessionExpiry = []string{"ALICLOUD_ROLE_SESSION_EXPIRATION"}
	envOIDCProviderARN   = []string{"ALICLOUD_OIDC_PROVIDER_ARN", "ALIBABA_CLOUD_OIDC_PROVIDER_ARN"}
	envOIDCTokenFile     = []string{"ALICLOUD_OIDC_TOKEN_FILE", "ALIBABA_CLOUD_OIDC_TOKEN_FILE"}
	// envAccountID and envClusterID build the OIDC provider ARN
	// acs:ram::<account>:oidc-provider/ack-rrsa-<cluster> when
	// ALICLOUD_OIDC_PROVIDER_ARN is not set (as the incumbent does).
	envAccountID = []string{"ALICLOUD_ACCOUNT_ID"}
	envClusterID = []string{"ALICLOUD_CLUSTER_ID"}
	// envECSRoleName names the worker's RAM role (default: discovered).
	envECSRoleName = []string{"ALIBABA_CLOUD_ECS_METADATA"}
	// envECSMetadataDisabled turns the worker RAM role off.
	envECSMetadataDisabled = []string{"ALIBABA_CLOUD_ECS_METADATA_DISABLED"}
)

const (
	// DefaultOIDCTokenFile is where the chart (rrsa.enable) projects the
	// provider's own service-account token.
	DefaultOIDCTokenFile = "/var/run/secrets/tokens/csi-secrets-store-provider-alibabacloud" // #nosec G101 -- a path, not a credential
	// DefaultRoleSessionName names the provider's STS sessions.
	DefaultRoleSessionName = "csi-secrets-store-provider-alibabacloud"
	defaultSessionSeconds  = 3600
)

var (
	oidcProviderArnRe = regexp.MustCompile(`^acs:ram::[0-9]{1,32}:oidc-provider/[A-Za-z0-9._@-]{1,128}$`)
	sessionNameRe     = regexp.MustCompile(`^[A-Za-z0-9_.@-]{2,64}$`)
)

func (r *Resolver) env(names []string) string {
	for _, n := range names {
		if v := strings.TrimSpace(r.cfg.Getenv(n)); v != "" {
			return v
		}
	}
	return ""
}

// envName is the guide's name of a variable, for messages.
func envName(names []string) string { return names[0] }

// oidcProviderARN is the cluster's OIDC provider (RRSA and per-pod RRSA).
func (r *Resolver) oidcProviderARN() (string, error) {
	arn := r.env(envOIDCProviderARN)
	if arn == "" {
		acct, cluster := r.env(envAccountID), r.env(envClusterID)
		if acct != "" && cluster != "" {
			arn = "acs:ram::" + acct + ":oidc-provider/ack-rrsa-" + cluster
		}
	}
	if arn != "" && !oidcProviderArnRe.MatchString(arn) {
		return "", errorf(ErrInvalid, "%s %q is not an OIDC provider ARN such as acs:ram::<account-id>:oidc-provider/ack-rrsa-<cluster-id>", envName(envOIDCProviderARN), textutil.Truncate(arn, 96))
	}
	return arn, nil
}

// sessionSeconds is ALICLOUD_ROLE_SESSION_EXPIRATION (900..43200), default 3600.
func (r *Resolver) sessionSeconds() (int, error) {
	v := r.env(envRoleSessionExpiry)
	if v == "" {
		return defaultSessionSeconds, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 900 || n > 43200 {
		return 0, errorf(ErrInvalid, "%s %q must be a number of seconds from 900 to 43200 (and at most the role's maximum session duration)", envName(envRoleSessionExpiry), textutil.Truncate(v, 32))
	}
	return n, nil
}

func (r *Resolver) sessionName() (string, error) {
	v := r.env(envRoleSessionName)
	if v == "" {
		return DefaultRoleSessionName, nil
	}
	if !sessionNameRe.MatchString(v) {
		return "", errorf(ErrInvalid, "%s %q must be 2-64 letters, digits, '.', '@', '-' or '_'", envName(envRoleSessionName), textutil.Truncate(v, 80))
	}
	return v, nil
}

// buildBase reads the provider's environment and builds its own identity.
// It makes no network call.
func (r *Resolver) buildBase() (*Identity, error) {
	ak, sk := r.env(envAccessKeyID), r.env(envAccessKeySecret)
	role := r.env(envRoleARN)
	if role != "" && !aliyun.ValidRoleArn(role) {
		return nil, errorf(ErrInvalid, "%s %q is not a RAM role ARN; use acs:ram::<account-id>:role/<role-name>", envName(envRoleARN), textutil.Truncate(role, 96))
	}
	switch {
	case ak != "" || sk != "":
		if ak == "" || sk == "" {
			return nil, errorf(ErrInvalid, "only one of the AccessKey id and secret is set: set both %s and %s", envName(envAccessKeyID), envName(envAccessKeySecret))
		}
		if role == "" {
			return r.intern(Fingerprint(string(ModeStatic), ak, sk, ""), func() (*Identity, error) {
				return StaticAccessKey(ModeEnvAccessKey, ak, sk, "", fmt.Sprintf("%s and %s are set (no %s)", envName(envAccessKeyID), envName(envAccessKeySecret), envName(envRoleARN)))
			})
		}
		name, err := r.sessionName()
		if err != nil {
			return nil, err
		}
		secs, err := r.sessionSeconds()
		if err != nil {
			return nil, err
		}
		return r.intern(Fingerprint(string(ModeEnvAssumeRole), ak, sk, strings.ToLower(role), name, strconv.Itoa(secs)), func() (*Identity, error) {
			base, err := providers.NewStaticAKCredentialsProviderBuilder().WithAccessKeyId(ak).WithAccessKeySecret(sk).Build()
			if err != nil {
				return nil, errorf(ErrInvalid, "AccessKey: %v", err)
			}
			p, err := r.ramRole(base, role, name, secs)
			if err != nil {
				return nil, err
			}
			return newIdentity(ModeEnvAssumeRole, "", role, fmt.Sprintf("%s and %s assume %s (AccessKey %s, session %s, %ds)", envName(envAccessKeyID), envName(envAccessKeySecret), envName(envRoleARN), MaskKeyID(ak), name, secs), p, r.cfg.OnRefresh), nil
		})
	case role != "":
		oidc, err := r.oidcProviderARN()
		if err != nil {
			return nil, err
		}
		if oidc == "" {
			return nil, errorf(ErrInvalid, "%s is set but there is neither an AccessKey (%s/%s) to assume it with nor %s for RRSA; set one, or unset %s to use the worker RAM role", envName(envRoleARN), envName(envAccessKeyID), envName(envAccessKeySecret), envName(envOIDCProviderARN), envName(envRoleARN))
		}
		file := r.env(envOIDCTokenFile)
		if file == "" {
			file = DefaultOIDCTokenFile
		}
		if _, err := os.Stat(file); err != nil {
			return nil, errorf(ErrInvalid, "RRSA: the provider's token file %s is missing: install the chart with rrsa.enable=true (it projects the token there), or point %s at the token", file, envName(envOIDCTokenFile))
		}
		name, err := r.sessionName()
		if err != nil {
			return nil, err
		}
		secs, err := r.sessionSeconds()
		if err != nil {
			return nil, err
		}
		return r.intern(Fingerprint(string(ModeRRSA), strings.ToLower(role), strings.ToLower(oidc), file, name, strconv.Itoa(secs)), func() (*Identity, error) {
			p, err := providers.NewOIDCCredentialsProviderBuilder().
				WithRoleArn(role).WithOIDCProviderARN(oidc).WithOIDCTokenFilePath(file).
				WithRoleSessionName(name).WithDurationSeconds(secs).
				WithSTSEndpoint(r.stsEndpoint()).WithHttpOptions(r.stsHTTP()).Build()
			if err != nil {
				return nil, errorf(ErrInvalid, "RRSA: %v", err)
			}
			return newIdentity(ModeRRSA, "", role, fmt.Sprintf("%s and %s are set: RRSA with the token in %s (session %s)", envName(envRoleARN), envName(envOIDCProviderARN), file, name), p, r.cfg.OnRefresh), nil
		})
	}
	if strings.EqualFold(r.env(envECSMetadataDisabled), "true") {
		return nil, ErrNoCredentials
	}
	roleName := r.env(envECSRoleName)
	return r.intern(Fingerprint(string(ModeECSRAMRole), roleName), func() (*Identity, error) {
		b := providers.NewECSRAMRoleCredentialsProviderBuilder().WithRoleName(roleName).WithDisableIMDSv1(true)
		if r.cfg.MetadataProxy != "" {
			b = b.WithHttpOptions(&providers.HttpOptions{Proxy: r.cfg.MetadataProxy})
		}
		p, err := b.Build()
		if err != nil {
			return nil, errorf(ErrInvalid, "worker RAM role: %v", err)
		}
		principal, how := "worker RAM role (discovered from ECS metadata)", "discovered"
		if roleName != "" {
			principal, how = "worker RAM role "+roleName, "named by "+envName(envECSRoleName)
		}
		return newIdentity(ModeECSRAMRole, "", principal, "no AccessKey and no RRSA environment: the worker's RAM role from ECS instance metadata ("+how+", hardened: token first)", p, r.cfg.OnRefresh), nil
	})
}

// ramRole builds an AssumeRole provider on top of base.
func (r *Resolver) ramRole(base providers.CredentialsProvider, role, session string, secs int) (providers.CredentialsProvider, error) {
	p, err := providers.NewRAMRoleARNCredentialsProviderBuilder().
		WithCredentialsProvider(base).WithRoleArn(role).WithRoleSessionName(session).
		WithDurationSeconds(secs).WithStsEndpoint(r.stsEndpoint()).WithHttpOptions(r.stsHTTP()).Build()
	if err != nil {
		return nil, errorf(ErrInvalid, "AssumeRole %s: %v", role, err)
	}
	return p, nil
}

// stsEndpoint is --sts-endpoint, else the regional VPC endpoint.
func (r *Resolver) stsEndpoint() string {
	if r.cfg.STSEndpoint != "" {
		return r.cfg.STSEndpoint
	}
	if r.cfg.Region != "" {
		return "sts-vpc." + r.cfg.Region + ".aliyuncs.com"
	}
	return "sts.aliyuncs.com"
}

func (r *Resolver) stsHTTP() *providers.HttpOptions {
	return &providers.HttpOptions{ConnectTimeout: 5000, ReadTimeout: 10000}
}
