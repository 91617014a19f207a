package emulator

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"time"

	"sigs.k8s.io/yaml"
)

// Seed is the initial state of an emulator: identities, secrets, parameters,
// roles, policies and the ECS metadata identity. It is usually read from YAML
// with ParseSeed; DemoSeed returns a ready-made one.
//
// Example (every field is optional):
//
//	accountId: "1234567890123456"
//	region: cn-hangzhou
//	accessKeys:
//	  - id: LTAIexampleAccessKey0000
//	    secret: exampleSecret
//	    principal: app-user          # name used by policies and role trust; default: the id
//	    disabled: false
//	secrets:                          # KMS GetSecretValue
//	  - name: db-creds
//	    value: '{"username":"u","password":"p"}'   # shorthand: one version "v1", ACSCurrent
//	  - name: tls-key
//	    dataType: binary              # with dataType binary, value/data hold base64
//	    value: AAECAw==
//	  - name: rotated
//	    versions:
//	      - {id: v1, data: old, stages: [ACSPrevious]}
//	      - {id: v2, data: new, stages: [ACSCurrent]}
//	  - name: tagged
//	    value: x
//	    description: for ListSecrets filters
//	    tags: {team: payments}          # ListSecrets TagKey/TagValue filters, FetchTags
//	  - name: dated
//	    versions:
//	      - {id: v1, data: old, createTime: "2024-01-02T03:04:05Z"}   # default: one second apart, oldest first
//	      - {id: v2, data: new, stages: [ACSCurrent]}
//	parameters:                       # OOS encrypted parameters (GetSecretParameter...)
//	  - name: test
//	    value: '{"username":"testuser"}'   # shorthand: version 1
//	  - name: multi
//	    versions: [one, two, three]        # versions 1..3, latest is 3
//	    description: demo
//	    tags: {env: dev}
//	  - name: /app/prod/db                 # paths for GetSecretParametersByPath
//	    value: s3cret
//	plainParameters:                  # OOS plain (common) parameters (GetParameter...)
//	  - name: /app/prod/endpoint
//	    value: db.internal:5432
//	  - name: hosts
//	    type: StringList                   # String (default) or StringList
//	    value: a,b,c
//	regions:                          # other regions (AddRegion): their own secrets and parameters
//	  cn-shanghai:
//	    secrets: [{name: db-creds, value: '{"username":"sh"}'}]
//	    parameters: [{name: test, value: sh}]
//	    plainParameters: [{name: endpoint, value: sh.internal}]
//	roles:
//	  - arn: acs:ram::1234567890123456:role/app-role
//	    trustedPrincipals: [app-user]     # base AccessKey principals (globs) allowed to AssumeRole
//	    trustedRoles: []                  # role ARNs (globs) whose sessions may AssumeRole (chaining)
//	    oidcProviderArn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1
//	    oidcSubjects: ["system:serviceaccount:kube-system:*"]
//	    oidcTokens: []                    # exact tokens accepted without decoding (verified first if the provider is registered)
//	    maxSessionDuration: 1h
//	    externalId: ""                    # when set, AssumeRole must pass it
//	oidcProviders:                     # AssumeRoleWithOIDC tokens for these provider ARNs are verified
//	  - arn: acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1
//	    issuer: https://kubernetes.default.svc.cluster.local   # must equal the token's iss
//	    jwks: '{"keys":[{"kty":"RSA","kid":"k1","n":"...","e":"AQAB"}]}'   # JSON text (or a mapping), e.g. /openid/v1/jwks
//	policies:                          # per principal (AccessKey principal or role ARN)
//	  app-user:
//	    allow: {"kms:GetSecretValue": ["db-*"], "oos:GetSecretParameter": ["*"]}
//	    deny:  {"kms:GetSecretValue": ["tls-key"]}
//	imds:
//	  roleName: ecs-role               # role attached to the emulated ECS instance
//	  roleArn: ""                      # default acs:ram::<account>:role/<roleName>
//	  region: cn-hangzhou
//	  hardened: true                   # tokenless GETs are rejected with 403
//	sts:
//	  sessionTTL: 1h                   # cap on every issued session's lifetime
type Seed struct {
	AccountID  string      `json:"accountId,omitempty"`
	Region     string      `json:"region,omitempty"`
	AccessKeys []AccessKey `json:"accessKeys,omitempty"`
	// Secrets, Parameters and PlainParameters belong to the primary region.
	Secrets    []Secret    `json:"secrets,omitempty"`
	Parameters []Parameter `json:"parameters,omitempty"`
	// PlainParameters are OOS plain (common) parameters: Type String
	// (default) or StringList, read with GetParameter, GetParameters,
	// ListParameterVersions and GetParametersByPath.
	PlainParameters []Parameter `json:"plainParameters,omitempty"`
	// Regions holds the secrets and parameters of regions other than the
	// primary one. Every region named here is served (see AddRegion).
	Regions  map[string]RegionSeed `json:"regions,omitempty"`
	Roles    []Role                `json:"roles,omitempty"`
	Policies map[string]Policy     `json:"policies,omitempty"`
	IMDS     *IMDSConfig           `json:"imds,omitempty"`
	STS      STSConfig             `json:"sts,omitempty"`
	// OIDCProviders are verified OIDC providers; see OIDCProvider. Tokens
	// for provider ARNs not listed here are decoded without verification.
	OIDCProviders []OIDCProvider `json:"oidcProviders,omitempty"`
}

// AccessKey is a long-lived RAM AccessKey pair.
type AccessKey struct {
	ID     string `json:"id"`
	Secret string `json:"secret"`
	// Principal names the identity for policies and role trust. Defaults to ID.
	Principal string `json:"principal,omitempty"`
	Disabled  bool   `json:"disabled,omitempty"`
}

// Secret is a KMS secret. Give either Value (one version "v1" labelled
// ACSCurrent) or Versions.
type Secret struct {
	Name string `json:"name"`
	// Type is the SecretType reported by GetSecretValue. Default Generic.
	Type string `json:"type,omitempty"`
	// Value is the shorthand for a single version. Base64 when DataType is binary.
	Value string `json:"value,omitempty"`
	// DataType applies to Value: text (default) or binary.
	DataType string          `json:"dataType,omitempty"`
	Versions []SecretVersion `json:"versions,omitempty"`
	// Description is matched by the ListSecrets Description filter.
	Description string `json:"description,omitempty"`
	// Tags are the secret's resource tags (ListSecrets filters and FetchTags).
	Tags map[string]string `json:"tags,omitempty"`
}

// RegionSeed is the state of one region other than the primary.
type RegionSeed struct {
	Secrets         []Secret    `json:"secrets,omitempty"`
	Parameters      []Parameter `json:"parameters,omitempty"`
	PlainParameters []Parameter `json:"plainParameters,omitempty"`
}

// SecretVersion is one version of a KMS secret.
type SecretVersion struct {
	ID string `json:"id"`
	// Data is the plaintext, or base64 when DataType is binary.
	Data     string   `json:"data"`
	DataType string   `json:"dataType,omitempty"`
	Stages   []string `json:"stages,omitempty"`
	// CreateTime is the version's creation time, RFC 3339 (reported by
	// GetSecretValue and ListSecretVersionIds). Default: the load time,
	// with the versions one second apart in the order given.
	CreateTime string `json:"createTime,omitempty"`
}

// Parameter is an OOS parameter: an encrypted (Secret) one in
// Seed.Parameters, a plain one in Seed.PlainParameters. Give either Value
// (version 1) or Versions (versions 1..n, at most 100).
type Parameter struct {
	Name string `json:"name"`
	// Type applies to plain parameters: String (default) or StringList.
	// Encrypted parameters are always Secret.
	Type        string            `json:"type,omitempty"`
	Value       string            `json:"value,omitempty"`
	Versions    []string          `json:"versions,omitempty"`
	Description string            `json:"description,omitempty"`
	KeyID       string            `json:"keyId,omitempty"`
	Constraints string            `json:"constraints,omitempty"`
	Tags        map[string]string `json:"tags,omitempty"`
}

// Role is a RAM role that STS can issue sessions for.
type Role struct {
	ARN string `json:"arn"`
	// TrustedPrincipals are AccessKey principal names (or AccessKey ids),
	// globs allowed, that may call AssumeRole on this role.
	TrustedPrincipals []string `json:"trustedPrincipals,omitempty"`
	// TrustedRoles are role ARNs (globs) whose STS sessions may AssumeRole
	// on this role (role chaining, also across accounts).
	TrustedRoles []string `json:"trustedRoles,omitempty"`
	// OIDCProviderARN enables AssumeRoleWithOIDC for this role.
	OIDCProviderARN string `json:"oidcProviderArn,omitempty"`
	// OIDCSubjects are the trusted `sub` claims (globs).
	OIDCSubjects []string `json:"oidcSubjects,omitempty"`
	// OIDCTokens are tokens accepted verbatim, without decoding.
	OIDCTokens []string `json:"oidcTokens,omitempty"`
	// MaxSessionDuration caps DurationSeconds. Default 1h.
	MaxSessionDuration Duration `json:"maxSessionDuration,omitempty"`
	// ExternalID, when set, must be passed by AssumeRole callers.
	ExternalID string `json:"externalId,omitempty"`
}

// Policy is an allow/deny list for one principal. Keys are actions
// (kms:GetSecretValue, oos:GetSecretParameter; globs allowed such as kms:*),
// values are resource-name globs. Deny wins. When Allow is empty every
// action not denied is allowed; when it is not empty only what it lists is.
// A principal without a Policy may do everything.
type Policy struct {
	Allow map[string][]string `json:"allow,omitempty"`
	Deny  map[string][]string `json:"deny,omitempty"`
}

// IMDSConfig describes the emulated ECS instance behind 100.100.100.200.
type IMDSConfig struct {
	RoleName   string `json:"roleName,omitempty"`
	RoleARN    string `json:"roleArn,omitempty"`
	Region     string `json:"region,omitempty"`
	ZoneID     string `json:"zoneId,omitempty"`
	InstanceID string `json:"instanceId,omitempty"`
	// Hardened rejects tokenless GETs (IMDSv2 only). Default true.
	Hardened *bool `json:"hardened,omitempty"`
}

// STSConfig holds STS settings.
type STSConfig struct {
	// SessionTTL caps the lifetime of every issued session (AssumeRole,
	// OIDC, IMDS, credentials URI). Default 1h. A TTL under 180s makes
	// credentials-go refresh before every API call.
	SessionTTL Duration `json:"sessionTTL,omitempty"`
}

// Duration is a time.Duration that reads "90s"/"1h" strings or a number of
// seconds from YAML/JSON.
type Duration struct{ time.Duration }

// UnmarshalJSON accepts a Go duration string or a number of seconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		if s == "" {
			d.Duration = 0
			return nil
		}
		v, err := time.ParseDuration(s)
		if err != nil {
			if n, err2 := strconv.ParseFloat(s, 64); err2 == nil {
				d.Duration = time.Duration(n * float64(time.Second))
				return nil
			}
			return fmt.Errorf("invalid duration %q: %w", s, err)
		}
		d.Duration = v
		return nil
	}
	var n float64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("invalid duration %s: want a string like \"1h\" or a number of seconds", b)
	}
	d.Duration = time.Duration(n * float64(time.Second))
	return nil
}

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// ParseSeed reads a YAML (or JSON) seed. Unknown fields are errors that name
// the field; the seed is validated before it is returned.
func ParseSeed(data []byte) (*Seed, error) {
	var s Seed
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		if path := unknownFieldPath(data); path != "" {
			return nil, fmt.Errorf("emulator seed: %s: unknown field", path)
		}
		return nil, fmt.Errorf("emulator seed: %w", err)
	}
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return &s, nil
}

const (
	stageCurrent  = "ACSCurrent"
	stagePrevious = "ACSPrevious"

	dataTypeText   = "text"
	dataTypeBinary = "binary"

	secretParameterType = "Secret"
	plainTypeString     = "String"
	plainTypeStringList = "StringList"

	maxParameterVersions = 100
)

// Validate checks the seed for contradictions (duplicate names, two
// ACSCurrent versions, bad base64...). Errors name the offending field.
func (s *Seed) Validate() error {
	var errs []error
	add := func(field, format string, a ...any) {
		errs = append(errs, fmt.Errorf("emulator seed: %s: %s", field, fmt.Sprintf(format, a...)))
	}

	ids := map[string]bool{}
	for i, k := range s.AccessKeys {
		f := fmt.Sprintf("accessKeys[%d]", i)
		if k.ID == "" {
			add(f+".id", "required")
		}
		if strings.HasPrefix(k.ID, "STS.") {
			add(f+".id", "the STS. prefix is reserved for issued sessions")
		}
		if k.Secret == "" {
			add(f+".secret", "required")
		}
		if ids[k.ID] {
			add(f+".id", "duplicate access key id %q", k.ID)
		}
		ids[k.ID] = true
	}

	validateObjects("", s.Secrets, s.Parameters, s.PlainParameters, add)
	regionNames := make([]string, 0, len(s.Regions))
	for name := range s.Regions {
		regionNames = append(regionNames, name)
	}
	sort.Strings(regionNames)
	for _, name := range regionNames {
		f := fmt.Sprintf("regions[%q]", name)
		if err := validRegionName(name); err != nil {
			add(f, "%v", err)
		}
		if name == firstNonEmpty(s.Region, DemoRegion) {
			add(f, "is the primary region; put its objects at the top level")
		}
		r := s.Regions[name]
		validateObjects(f+".", r.Secrets, r.Parameters, r.PlainParameters, add)
	}

	arns := map[string]bool{}
	for i, r := range s.Roles {
		f := fmt.Sprintf("roles[%d]", i)
		if _, _, err := parseRoleARN(r.ARN); err != nil {
			add(f+".arn", "%v", err)
		}
		if arns[strings.ToLower(r.ARN)] {
			add(f+".arn", "duplicate role %q", r.ARN)
		}
		arns[strings.ToLower(r.ARN)] = true
		if len(r.OIDCSubjects) > 0 && r.OIDCProviderARN == "" {
			add(f+".oidcSubjects", "needs oidcProviderArn")
		}
		if r.MaxSessionDuration.Duration < 0 {
			add(f+".maxSessionDuration", "must not be negative")
		}
	}

	providers := map[string]bool{}
	for i, p := range s.OIDCProviders {
		f := fmt.Sprintf("oidcProviders[%d]", i)
		if err := parseOIDCProviderARN(p.ARN); err != nil {
			add(f+".arn", "%v", err)
		}
		if providers[strings.ToLower(p.ARN)] {
			add(f+".arn", "duplicate OIDC provider %q", p.ARN)
		}
		providers[strings.ToLower(p.ARN)] = true
		if p.Issuer == "" {
			add(f+".issuer", "required")
		}
		if _, err := parseJWKS([]byte(p.JWKS)); err != nil {
			add(f+".jwks", "%v", err)
		}
	}

	for principal, p := range s.Policies {
		f := fmt.Sprintf("policies[%q]", principal)
		for _, m := range []struct {
			name string
			m    map[string][]string
		}{{"allow", p.Allow}, {"deny", p.Deny}} {
			for action := range m.m {
				if !strings.Contains(action, ":") {
					add(f+"."+m.name, "action %q must look like service:Action, e.g. kms:GetSecretValue", action)
				}
			}
		}
	}

	if s.IMDS != nil && s.IMDS.RoleARN != "" {
		if _, _, err := parseRoleARN(s.IMDS.RoleARN); err != nil {
			add("imds.roleArn", "%v", err)
		}
	}
	if s.STS.SessionTTL.Duration < 0 {
		add("sts.sessionTTL", "must not be negative")
	}
	return errors.Join(errs...)
}

// validateObjects checks the secrets and parameters of one region; prefix
// starts the field names ("" or `regions["cn-shanghai"].`).
func validateObjects(prefix string, secrets []Secret, params, plain []Parameter, add func(field, format string, a ...any)) {
	names := map[string]bool{}
	for i, sec := range secrets {
		f := fmt.Sprintf("%ssecrets[%d]", prefix, i)
		if sec.Name == "" {
			add(f+".name", "required")
		}
		if names[sec.Name] {
			add(f+".name", "duplicate secret %q", sec.Name)
		}
		names[sec.Name] = true
		if _, err := secretVersionsFromSeed(sec); err != nil {
			add(f, "%v", err)
		}
		for k := range sec.Tags {
			if k == "" {
				add(f+".tags", "empty tag key")
			}
		}
	}
	for _, set := range []struct {
		field  string
		params []Parameter
		plain  bool
	}{{"parameters", params, false}, {"plainParameters", plain, true}} {
		pnames := map[string]bool{}
		for i, p := range set.params {
			f := fmt.Sprintf("%s%s[%d]", prefix, set.field, i)
			nameErr := validParameterName(p.Name)
			if set.plain {
				nameErr = validPlainParameterName(p.Name)
			}
			if nameErr != nil {
				add(f+".name", "%v", nameErr)
			}
			if pnames[p.Name] {
				add(f+".name", "duplicate parameter %q", p.Name)
			}
			pnames[p.Name] = true
			switch {
			case set.plain && p.Type != "" && p.Type != plainTypeString && p.Type != plainTypeStringList:
				add(f+".type", "must be String or StringList, got %q", p.Type)
			case !set.plain && p.Type != "" && p.Type != secretParameterType:
				add(f+".type", "encrypted parameters are always Secret; plain ones go in plainParameters")
			}
			switch {
			case p.Value != "" && len(p.Versions) > 0:
				add(f, "give either value or versions, not both")
			case p.Value == "" && len(p.Versions) == 0:
				add(f, "give value or versions")
			case len(p.Versions) > maxParameterVersions:
				add(f+".versions", "at most %d versions, got %d", maxParameterVersions, len(p.Versions))
			}
		}
	}
}

// validParameterName applies the OOS naming rules the emulator cares about
// to encrypted parameters.
func validParameterName(name string) error { return checkParameterName(name, 180) }

// validPlainParameterName is validParameterName for plain parameters, whose
// names may be 200 characters long (CreateParameter).
func validPlainParameterName(name string) error { return checkParameterName(name, 200) }

func checkParameterName(name string, maxLen int) error {
	if name == "" {
		return errors.New("required")
	}
	if len(name) > maxLen {
		return fmt.Errorf("longer than %d characters", maxLen)
	}
	up := strings.ToUpper(name)
	for _, p := range []string{"ALIYUN", "ACS", "ALIBABA", "ALICLOUD", "OOS"} {
		if strings.HasPrefix(up, p) {
			return fmt.Errorf("%q must not start with %s", name, p)
		}
	}
	return nil
}

// secretVersionsFromSeed turns a seed secret into stored versions, checking
// stage and data-type rules.
func secretVersionsFromSeed(sec Secret) ([]*secretVersion, error) {
	var in []SecretVersion
	switch {
	case sec.Value != "" && len(sec.Versions) > 0:
		return nil, errors.New("give either value or versions, not both")
	case sec.Value == "" && len(sec.Versions) == 0:
		return nil, errors.New("give value or versions")
	case len(sec.Versions) > 0:
		if sec.DataType != "" {
			return nil, errors.New("dataType belongs on each version when versions are given")
		}
		in = sec.Versions
	default:
		in = []SecretVersion{{ID: "v1", Data: sec.Value, DataType: sec.DataType, Stages: []string{stageCurrent}}}
	}
	out := make([]*secretVersion, 0, len(in))
	seen := map[string]bool{}
	stages := map[string]int{}
	for i, v := range in {
		f := fmt.Sprintf("versions[%d]", i)
		if v.ID == "" {
			return nil, fmt.Errorf("%s.id: required", f)
		}
		if seen[v.ID] {
			return nil, fmt.Errorf("%s.id: duplicate version %q", f, v.ID)
		}
		seen[v.ID] = true
		dt := v.DataType
		if dt == "" {
			dt = dataTypeText
		}
		var data []byte
		switch dt {
		case dataTypeText:
			data = []byte(v.Data)
		case dataTypeBinary:
			b, err := base64.StdEncoding.DecodeString(v.Data)
			if err != nil {
				return nil, fmt.Errorf("%s.data: binary data must be base64: %w", f, err)
			}
			data = b
		default:
			return nil, fmt.Errorf("%s.dataType: must be text or binary, got %q", f, v.DataType)
		}
		for _, st := range v.Stages {
			if st == "" {
				return nil, fmt.Errorf("%s.stages: empty stage", f)
			}
			stages[st]++
			if stages[st] > 1 {
				return nil, fmt.Errorf("%s.stages: stage %q is on more than one version", f, st)
			}
		}
		var created time.Time
		if v.CreateTime != "" {
			t, err := time.Parse(time.RFC3339, v.CreateTime)
			if err != nil {
				return nil, fmt.Errorf("%s.createTime: want RFC 3339 like 2024-01-02T03:04:05Z: %w", f, err)
			}
			created = t
		}
		out = append(out, &secretVersion{id: v.ID, data: data, dataType: dt, stages: append([]string(nil), v.Stages...), created: created})
	}
	if stages[stageCurrent] != 1 {
		return nil, fmt.Errorf("exactly one version must carry %s", stageCurrent)
	}
	return out, nil
}

// parseRoleARN splits acs:ram::<account>:role/<name>.
func parseRoleARN(arn string) (account, name string, err error) {
	parts := strings.SplitN(arn, ":", 5)
	if len(parts) != 5 || parts[0] != "acs" || parts[1] != "ram" || !strings.HasPrefix(parts[4], "role/") || parts[3] == "" {
		return "", "", fmt.Errorf("role ARN %q must look like acs:ram::<account>:role/<name>", arn)
	}
	name = strings.TrimPrefix(parts[4], "role/")
	if name == "" {
		return "", "", fmt.Errorf("role ARN %q has an empty role name", arn)
	}
	return parts[3], name, nil
}

// Demo identities and values. They are documented so that `dev` users and
// tests can sign requests against an emulator started with DemoSeed.
const (
	DemoAccountID       = "1234567890123456"
	DemoRegion          = "cn-hangzhou"
	DemoAccessKeyID     = "LTAIdemoAccessKeyId00000"
	DemoAccessKeySecret = "demoAccessKeySecret0000000000000"
	DemoPrincipal       = "demo-user"

	DemoSecretJSON      = "demo-db"
	DemoSecretJSONValue = `{"username":"testuser","password":"testpassword"}` //nolint:gosec // the documented demo value of a secret that exists only in the emulator
	DemoSecretBinary    = "demo-tls-key"                                      //nolint:gosec // a secret's name, not a credential
	DemoParameter       = "test"
	DemoParameterValue  = `{"username":"testuser","password":"testpassword"}`

	DemoRoleARN         = "acs:ram::" + DemoAccountID + ":role/demo-role"
	DemoOIDCRoleARN     = "acs:ram::" + DemoAccountID + ":role/demo-rrsa-role"
	DemoOIDCProviderARN = "acs:ram::" + DemoAccountID + ":oidc-provider/ack-rrsa-cdemo"
	DemoOIDCSubject     = "system:serviceaccount:kube-system:csi-secrets-store-provider-alibabacloud"
	DemoIMDSRoleName    = "demo-ecs-role"
)

// DemoSecretBinaryValue is the content of the demo binary secret: a few
// bytes that are not valid UTF-8, so that text handling bugs show.
var DemoSecretBinaryValue = []byte{0x30, 0x82, 0x01, 0x0a, 0x02, 0x82, 0x01, 0x01, 0x00, 0xde, 0xad, 0xbe, 0xef, 0xff, 0xfe, 'd', 'e', 'm', 'o'}

// DemoSeed returns the built-in seed used by `dev`: one AccessKey
// (DemoAccessKeyID / DemoAccessKeySecret, principal demo-user), a JSON KMS
// secret demo-db, a binary KMS secret demo-tls-key, the OOS encrypted
// parameter test from the user guide, a role demo-role that demo-user may
// assume, an RRSA role trusting the provider's service account, and an ECS
// instance role demo-ecs-role in cn-hangzhou.
func DemoSeed() *Seed {
	return &Seed{
		AccountID: DemoAccountID,
		Region:    DemoRegion,
		AccessKeys: []AccessKey{
			{ID: DemoAccessKeyID, Secret: DemoAccessKeySecret, Principal: DemoPrincipal},
		},
		Secrets: []Secret{
			{Name: DemoSecretJSON, Value: DemoSecretJSONValue},
			{Name: DemoSecretBinary, DataType: dataTypeBinary, Value: base64.StdEncoding.EncodeToString(DemoSecretBinaryValue)},
		},
		Parameters: []Parameter{
			{Name: DemoParameter, Value: DemoParameterValue, Description: "encrypted parameter from the user guide"},
		},
		Roles: []Role{
			{ARN: DemoRoleARN, TrustedPrincipals: []string{DemoPrincipal}},
			{ARN: DemoOIDCRoleARN, OIDCProviderARN: DemoOIDCProviderARN, OIDCSubjects: []string{DemoOIDCSubject}},
		},
		IMDS: &IMDSConfig{RoleName: DemoIMDSRoleName, Region: DemoRegion},
	}
}

// clone returns a deep copy through JSON, so that Reset can restore it.
func (s *Seed) clone() *Seed {
	b, err := json.Marshal(s)
	if err != nil {
		panic(err) // a Seed always marshals
	}
	var out Seed
	if err := json.Unmarshal(b, &out); err != nil {
		panic(err)
	}
	return &out
}

// loadSeed replaces the whole state with the seed's. Faults, counters and
// the request log are not touched.
func (e *Emulator) loadSeed(s *Seed) {
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	e.keys = map[string]*accessKeyState{}
	for _, k := range s.AccessKeys {
		e.keys[k.ID] = &accessKeyState{id: k.ID, secret: k.Secret, principal: firstNonEmpty(k.Principal, k.ID), disabled: k.Disabled}
	}
	e.sessions = map[string]*session{}
	e.nonces = map[string]time.Time{}
	e.loadRegionSeed(e.primary, RegionSeed{Secrets: s.Secrets, Parameters: s.Parameters, PlainParameters: s.PlainParameters}, now)
	for _, rs := range e.regions {
		e.loadRegionSeed(rs, s.Regions[rs.name], now)
	}
	e.roles = map[string]*roleState{}
	for _, r := range s.Roles {
		account, name, _ := parseRoleARN(r.ARN)
		e.roles[strings.ToLower(r.ARN)] = &roleState{Role: r, account: account, name: name}
	}
	e.oidcProviders = map[string]*oidcProvider{}
	for _, p := range s.OIDCProviders {
		if op, err := newOIDCProvider(p.ARN, p.Issuer, []byte(p.JWKS)); err == nil { // validated by New
			e.oidcProviders[strings.ToLower(p.ARN)] = op
		}
	}
	e.policies = map[string]Policy{}
	for p, pol := range s.Policies {
		e.policies[p] = pol
	}

	e.imds = imdsState{region: e.region, zoneID: e.region + "-h", instanceID: "i-emulator" + randomHex(6), hardened: true, tokens: map[string]time.Time{}}
	if im := s.IMDS; im != nil {
		e.imds.roleName = im.RoleName
		e.imds.roleARN = im.RoleARN
		if e.imds.roleARN == "" && im.RoleName != "" {
			e.imds.roleARN = "acs:ram::" + e.account + ":role/" + im.RoleName
		}
		e.imds.region = firstNonEmpty(im.Region, e.region)
		e.imds.zoneID = firstNonEmpty(im.ZoneID, e.imds.region+"-h")
		e.imds.instanceID = firstNonEmpty(im.InstanceID, e.imds.instanceID)
		if im.Hardened != nil {
			e.imds.hardened = *im.Hardened
		}
	}
	if e.opts.HardenedIMDS != nil {
		e.imds.hardened = *e.opts.HardenedIMDS
	}
	e.sessionTTL = defaultSessionTTL
	if s.STS.SessionTTL.Duration > 0 {
		e.sessionTTL = s.STS.SessionTTL.Duration
	}
	if e.opts.SessionTTL > 0 {
		e.sessionTTL = e.opts.SessionTTL
	}
}

// loadRegionSeed replaces a region's secrets and parameters with the
// seed's. e.mu must be held.
func (e *Emulator) loadRegionSeed(rs *regionState, s RegionSeed, now time.Time) {
	rs.clear()
	for _, sec := range s.Secrets {
		versions, _ := secretVersionsFromSeed(sec) // validated by New
		base := now.Truncate(time.Second).Add(-time.Duration(len(versions)-1) * time.Second)
		created := time.Time{}
		for i, v := range versions {
			if v.created.IsZero() {
				v.created = base.Add(time.Duration(i) * time.Second)
			}
			if created.IsZero() || v.created.Before(created) {
				created = v.created
			}
		}
		ks := &kmsSecret{name: sec.Name, typ: firstNonEmpty(sec.Type, "Generic"), description: sec.Description, created: created, versions: versions, nextNum: len(versions), tags: map[string]string{}}
		for k, v := range sec.Tags {
			ks.tags[k] = v
		}
		rs.secrets[sec.Name] = ks
	}
	for _, set := range []struct {
		params []Parameter
		into   map[string]*oosParam
		plain  bool
	}{{s.Parameters, rs.params, false}, {s.PlainParameters, rs.plain, true}} {
		for _, p := range set.params {
			op := newOOSParam(p.Name)
			if set.plain {
				op = newPlainParam(p.Name, firstNonEmpty(p.Type, plainTypeString))
			}
			op.description, op.constraints = p.Description, p.Constraints
			if !set.plain {
				op.keyID = firstNonEmpty(p.KeyID, op.keyID)
			}
			for k, v := range p.Tags {
				op.tags[k] = v
			}
			values := p.Versions
			if len(values) == 0 {
				values = []string{p.Value}
			}
			for _, v := range values {
				op.versions = append(op.versions, oosVersion{value: v, updated: now})
			}
			set.into[p.Name] = op
		}
	}
}

// unknownFieldPath finds the first key of the YAML document that the Seed
// type does not have, as a path like secrets[0].valeu, so that the error
// says where the typo is. It returns "" when it finds none.
func unknownFieldPath(data []byte) string {
	j, err := yaml.YAMLToJSON(data)
	if err != nil {
		return ""
	}
	var doc any
	if json.Unmarshal(j, &doc) != nil {
		return ""
	}
	return findUnknown(doc, reflect.TypeOf(Seed{}), "")
}

func findUnknown(v any, t reflect.Type, path string) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		if t == reflect.TypeOf(Duration{}) {
			return ""
		}
		fields := map[string]reflect.Type{}
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name != "" && name != "-" {
				fields[name] = f.Type
			}
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				return joinPath(path, k)
			}
			if p := findUnknown(m[k], ft, joinPath(path, k)); p != "" {
				return p
			}
		}
	case reflect.Slice:
		items, ok := v.([]any)
		if !ok {
			return ""
		}
		for i, item := range items {
			if p := findUnknown(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if p := findUnknown(m[k], t.Elem(), fmt.Sprintf("%s[%q]", path, k)); p != "" {
				return p
			}
		}
	}
	return ""
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}
