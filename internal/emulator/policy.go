package emulator

import (
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"
)

// Actions checked against policies: the RAM action names of the operations
// (docs/emulator.md says where each comes from).
const (
	ActionKMSGetSecretValue              = "kms:GetSecretValue"              //nolint:gosec // a RAM action name, not a credential
	ActionKMSListSecretVersionIds        = "kms:ListSecretVersionIds"        //nolint:gosec // a RAM action name, not a credential
	ActionKMSListSecrets                 = "kms:ListSecrets"                 //nolint:gosec // a RAM action name, not a credential
	ActionOOSGetSecretParameter          = "oos:GetSecretParameter"          //nolint:gosec // a RAM action name, not a credential
	ActionOOSGetSecretParameters         = "oos:GetSecretParameters"         //nolint:gosec // a RAM action name, not a credential
	ActionOOSListSecretParameterVersions = "oos:ListSecretParameterVersions" //nolint:gosec // a RAM action name, not a credential
	ActionOOSGetSecretParametersByPath   = "oos:GetSecretParametersByPath"   //nolint:gosec // a RAM action name, not a credential
	ActionOOSGetParameter                = "oos:GetParameter"
	ActionOOSGetParameters               = "oos:GetParameters"
	ActionOOSListParameterVersions       = "oos:ListParameterVersions"
	ActionOOSGetParametersByPath         = "oos:GetParametersByPath"

	accessDeniedPolicyType       = "AccountLevelIdentityBasedPolicy"
	noPermissionTypeImplicitDeny = "ImplicitDeny"
	noPermissionTypeExplicitDeny = "ExplicitDeny"
)

// Resource types of the ARNs in AccessDeniedDetail.
const (
	kmsKindSecret = "secret"
	oosKindSecret = "secretparameter"
	oosKindPlain  = "parameter"
)

// ramAction is the RAM action an API action is authorized as, and the type
// of resource its ARN names.
type ramAction struct{ action, kind string }

// ramActions maps "route action" to its RAM action.
var ramActions = map[string]ramAction{
	RouteKMS + " GetSecretValue":              {ActionKMSGetSecretValue, kmsKindSecret},
	RouteKMS + " ListSecretVersionIds":        {ActionKMSListSecretVersionIds, kmsKindSecret},
	RouteKMS + " ListSecrets":                 {ActionKMSListSecrets, kmsKindSecret},
	RouteOOS + " GetSecretParameter":          {ActionOOSGetSecretParameter, oosKindSecret},
	RouteOOS + " GetSecretParameters":         {ActionOOSGetSecretParameters, oosKindSecret},
	RouteOOS + " ListSecretParameterVersions": {ActionOOSListSecretParameterVersions, oosKindSecret},
	RouteOOS + " GetSecretParametersByPath":   {ActionOOSGetSecretParametersByPath, oosKindSecret},
	RouteOOS + " GetParameter":                {ActionOOSGetParameter, oosKindPlain},
	RouteOOS + " GetParameters":               {ActionOOSGetParameters, oosKindPlain},
	RouteOOS + " ListParameterVersions":       {ActionOOSListParameterVersions, oosKindPlain},
	RouteOOS + " GetParametersByPath":         {ActionOOSGetParametersByPath, oosKindPlain},
}

// resourceARN is acs:kms:<region>:<account>:secret/<name> (the secret
// container acs:kms:<region>:<account>:secret when there is no name, as
// for ListSecrets) or acs:oos:<region>:<account>:<kind>/<name>.
func (e *Emulator) resourceARN(region, kind, name string) string {
	if kind == kmsKindSecret {
		if name == "" {
			return "acs:kms:" + region + ":" + e.account + ":secret"
		}
		return e.secretARN(region, name)
	}
	return e.oosARN(region, kind, name)
}

func (e *Emulator) oosARN(region, kind, name string) string {
	return "acs:oos:" + region + ":" + e.account + ":" + kind + "/" + name
}

// SetPolicy sets (or, with a zero Policy, keeps as allow-all) the policy of
// a principal: an AccessKey principal name or a role ARN.
func (e *Emulator) SetPolicy(principal string, p Policy) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.policies[principal] = p
}

// ClearPolicy removes a principal's policy: it may do everything again.
func (e *Emulator) ClearPolicy(principal string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.policies, principal)
}

// allowed evaluates the principal's policy. explicit reports a deny-list hit.
func (e *Emulator) allowed(principal, action, resource string) (ok, explicit bool) {
	e.mu.Lock()
	p, has := e.policies[principal]
	e.mu.Unlock()
	if !has {
		return true, false
	}
	if policyMatches(p.Deny, action, resource) {
		return false, true
	}
	if len(p.Allow) == 0 {
		return true, false
	}
	return policyMatches(p.Allow, action, resource), false
}

func policyMatches(m map[string][]string, action, resource string) bool {
	for a, resources := range m {
		if !globMatch(a, action) {
			continue
		}
		for _, r := range resources {
			if globMatch(r, resource) {
				return true
			}
		}
	}
	return false
}

// authorize returns the 403 the service would answer, or nil.
func (e *Emulator) authorize(c *call, id *identity, action, resource, code, arn string) *apiError {
	ok, explicit := e.allowed(id.Principal, action, resource)
	if ok {
		return nil
	}
	return e.permissionDenied(c, id.Principal, action, arn, code, explicit)
}

// permissionDenied builds Forbidden.NoPermission with an AccessDeniedDetail.
func (e *Emulator) permissionDenied(c *call, principal, action, arn, code string, explicit bool) *apiError {
	ptype := "SubUser"
	if strings.HasPrefix(principal, "acs:ram:") {
		ptype = "AssumedRoleUser"
	}
	npt := noPermissionTypeImplicitDeny
	if explicit {
		npt = noPermissionTypeExplicitDeny
	}
	diag := fmt.Sprintf(`{"AuthAction":%q,"AuthResource":%q,"AuthPrincipal":%q,"NoPermissionType":%q}`, action, arn, principal, npt)
	return &apiError{
		Status:  http.StatusForbidden,
		Code:    code,
		Message: "User not authorized to operate on the specified resource, or this API doesn't support RAM.",
		AccessDeniedDetail: map[string]any{
			"AuthAction":               action,
			"AuthPrincipalType":        ptype,
			"AuthPrincipalDisplayName": principal,
			"AuthPrincipalOwnerId":     e.account,
			"AuthResource":             arn,
			"NoPermissionType":         npt,
			"PolicyType":               accessDeniedPolicyType,
			"EncodedDiagnosticMessage": base64.StdEncoding.EncodeToString([]byte(diag)),
		},
	}
}

// globMatch matches * (any run, including /) and ? (one byte).
func globMatch(pattern, s string) bool {
	if pattern == "*" {
		return true
	}
	// Iterative wildcard matching with backtracking on the last *.
	p, i := 0, 0
	star, mark := -1, 0
	for i < len(s) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == s[i]):
			p++
			i++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, i
			p++
		case star >= 0:
			p = star + 1
			mark++
			i = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func globAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if globMatch(p, s) {
			return true
		}
	}
	return false
}
