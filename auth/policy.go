package auth

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/textutil"
)

// PolicyRule lets the pods of matching namespaces and service accounts
// mount the objects whose names match its globs, per object type. In a glob,
// * matches any run of characters (including /) and ? any one character.
type PolicyRule struct {
	Namespace      string   `json:"namespace"`
	ServiceAccount string   `json:"serviceAccount,omitempty"` // default "*"
	KMS            []string `json:"kms,omitempty"`
	OOS            []string `json:"oos,omitempty"`
	// OOSParameters are the common (plain) OOS parameters, objectType
	// oos-parameter: a name space apart from the encrypted ones under oos.
	OOSParameters []string `json:"oosParameters,omitempty"`
	// Roles are the RAM role ARNs (globs) an object's crossAccountRoleArn
	// may name. With a policy loaded, a role no rule lists is refused.
	Roles []string `json:"roles,omitempty"`
}

// PolicyFile is the --policy file:
//
//	rules:
//	  - namespace: payments          # glob
//	    serviceAccount: "*"          # glob, default "*"
//	    kms: ["payments/*"]          # object-name globs per type
//	    oos: ["payments-*"]           # encrypted parameters
//	    oosParameters: ["payments-*"] # common parameters (objectType oos-parameter)
//	    roles: ["acs:ram::1234567890123456:role/payments-*"]   # crossAccountRoleArn
//
// With a policy loaded, a Mount is refused before any upstream call unless
// some rule allows every one of its objects.
type PolicyFile struct {
	Rules *[]PolicyRule `json:"rules"`
}

// ParsePolicy reads a policy file strictly: unknown keys, a missing rules
// key, empty globs and rules that allow nothing are errors naming the rule.
func ParsePolicy(data []byte) ([]PolicyRule, error) {
	var f PolicyFile
	if err := yaml.UnmarshalStrict(data, &f); err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	if f.Rules == nil {
		return nil, errors.New(`policy: no "rules" key; write "rules: []" to refuse every mount`)
	}
	rules := *f.Rules
	var errs []error
	for i := range rules {
		r := &rules[i]
		where := fmt.Sprintf("policy: rules[%d]", i)
		r.Namespace = strings.TrimSpace(r.Namespace)
		r.ServiceAccount = strings.TrimSpace(r.ServiceAccount)
		if r.Namespace == "" {
			errs = append(errs, fmt.Errorf(`%s.namespace: required (a namespace or a glob such as "team-*" or "*")`, where))
		}
		if r.ServiceAccount == "" {
			r.ServiceAccount = "*"
		}
		if len(r.KMS) == 0 && len(r.OOS) == 0 && len(r.OOSParameters) == 0 && len(r.Roles) == 0 {
			errs = append(errs, fmt.Errorf("%s: allows nothing: list object-name globs under kms, oos and/or oosParameters (and role ARN globs under roles)", where))
		}
		for _, l := range []struct {
			name  string
			globs []string
		}{{"kms", r.KMS}, {"oos", r.OOS}, {"oosParameters", r.OOSParameters}, {"roles", r.Roles}} {
			for j, g := range l.globs {
				if strings.TrimSpace(g) == "" || strings.TrimSpace(g) != g {
					errs = append(errs, fmt.Errorf("%s.%s[%d]: %q is empty or has surrounding spaces", where, l.name, j, g))
				}
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return rules, nil
}

// Policy is a loaded policy file, reloaded when its content changes. It is
// safe for concurrent use.
type Policy struct {
	path string
	log  *slog.Logger
	cur  atomic.Pointer[policyState]

	mu      sync.Mutex // reloads
	lastBad [32]byte   // content of the last bad file logged
}

type policyState struct {
	rules []PolicyRule
	sum   [32]byte
}

// LoadPolicy reads the policy file; a missing or bad file is an error (at
// startup the provider refuses to run rather than run without its policy).
func LoadPolicy(path string, log *slog.Logger) (*Policy, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	b, err := os.ReadFile(path) // #nosec G304 -- the operator's --policy file
	if err != nil {
		return nil, fmt.Errorf("policy: %w", err)
	}
	rules, err := ParsePolicy(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	p := &Policy{path: path, log: log}
	p.cur.Store(&policyState{rules: rules, sum: sha256.Sum256(b)})
	return p, nil
}

// Path is the policy file's path.
func (p *Policy) Path() string { return p.path }

// Rules returns the rules in force.
func (p *Policy) Rules() []PolicyRule { return append([]PolicyRule(nil), p.cur.Load().rules...) }

// Reload reads the file again. A new, valid content replaces the rules; a
// missing or bad file keeps the last good rules and is logged once per
// distinct content. It reports whether the rules changed.
func (p *Policy) Reload() (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	b, err := os.ReadFile(p.path) // #nosec G304 -- the operator's --policy file
	if err != nil {
		sum := sha256.Sum256([]byte("\x00read error: " + err.Error()))
		if sum != p.lastBad {
			p.lastBad = sum
			p.log.Warn("policy file unreadable; keeping the last good policy", "path", p.path, "error", err.Error())
		}
		return false, err
	}
	sum := sha256.Sum256(b)
	if sum == p.cur.Load().sum {
		return false, nil
	}
	rules, err := ParsePolicy(b)
	if err != nil {
		if sum != p.lastBad {
			p.lastBad = sum
			p.log.Warn("policy file invalid; keeping the last good policy", "path", p.path, "error", err.Error())
		}
		return false, err
	}
	p.cur.Store(&policyState{rules: rules, sum: sum})
	p.lastBad = [32]byte{}
	p.log.Info("policy reloaded", "path", p.path, "rules", len(rules))
	return true, nil
}

// Watch reloads the file every interval until ctx is done. Polling (not
// inotify) also sees ConfigMap updates, which swap a symlink.
func (p *Policy) Watch(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = 5 * time.Second
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_, _ = p.Reload()
		}
	}
}

// Allow reports whether the pods of namespace running as serviceAccount may
// mount the object of objectType ("kms", "oos" or "oos-parameter") named
// name. A refusal names the rule that would allow it.
func (p *Policy) Allow(namespace, serviceAccount, objectType, name string) error {
	if namespace == "" {
		return fmt.Errorf("policy %s: the mount carries no pod namespace (csi.storage.k8s.io/pod.namespace), so no rule can apply; the CSIDriver must have podInfoOnMount: true", p.path)
	}
	sa := serviceAccount
	if sa == "" {
		sa = "default"
	}
	applying := 0
	for _, r := range p.cur.Load().rules {
		if !Glob(r.Namespace, namespace) || !Glob(r.ServiceAccount, sa) {
			continue
		}
		applying++
		var globs []string
		switch objectType {
		case "kms":
			globs = r.KMS
		case "oos":
			globs = r.OOS
		case "oos-parameter":
			globs = r.OOSParameters
		case PolicyRoles:
			globs = r.Roles
		}
		for _, g := range globs {
			if Glob(g, name) {
				return nil
			}
		}
	}
	// The namespace and service account come from the Mount's attributes:
	// quoted up to the longest Kubernetes name, and a rule is suggested
	// only for names that can exist.
	nsQ, saQ, nameQ := textutil.Clip(namespace, maxKubeName), textutil.Clip(sa, maxKubeName), textutil.Clip(name, maxQuotedName)
	why := "no rule applies to this namespace and service account"
	if objectType == PolicyRoles {
		if applying > 0 {
			why = fmt.Sprintf("%d rule(s) apply to it, but none lists this role under roles", applying)
		}
		fix := fmt.Sprintf("to allow it add the rule {namespace: %q, serviceAccount: %q, roles: [%q]}", namespace, sa, nameQ)
		if nsQ != namespace || saQ != sa {
			fix = "no Kubernetes namespace or service account has a name that long"
		}
		return fmt.Errorf("policy %s: namespace %q, service account %q may not assume crossAccountRoleArn %q (%s); %s",
			p.path, nsQ, saQ, nameQ, why, fix)
	}
	if applying > 0 {
		why = fmt.Sprintf("%d rule(s) apply to it, but none lists this %s name", applying, objectType)
	}
	key := objectType
	if key == "oos-parameter" {
		key = "oosParameters"
	}
	fix := fmt.Sprintf("to allow it add the rule {namespace: %q, serviceAccount: %q, %s: [%q]}", namespace, sa, key, nameQ)
	if nsQ != namespace || saQ != sa {
		fix = "no Kubernetes namespace or service account has a name that long"
	}
	return fmt.Errorf("policy %s: namespace %q, service account %q may not mount %s object %q (%s); %s",
		p.path, nsQ, saQ, objectType, nameQ, why, fix)
}

// Bounds of names quoted in errors: the longest Kubernetes name (a DNS
// subdomain), and the longest object name a class may hold.
const (
	maxKubeName   = 253
	maxQuotedName = 1024
)

// PolicyRoles is the objectType Allow takes for a crossAccountRoleArn.
const PolicyRoles = "roles"

// Glob matches name against pattern, where * matches any run of characters
// (including /) and ? matches one character. Everything else is literal.
func Glob(pattern, name string) bool {
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && (pattern[p] == '?' || pattern[p] == name[n]):
			p++
			n++
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}
