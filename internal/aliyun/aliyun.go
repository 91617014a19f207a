// Package aliyun holds the syntax of the Alibaba Cloud identifiers that
// more than one package checks, so each rule is written once: auth checks
// role ARNs from the environment, a nodePublishSecretRef, a pod's service
// account and crossAccountRoleArn, and the region ECS metadata reports;
// fetch checks a class's region and crossAccountRoleArn; cmd checks
// --region.
package aliyun

import "regexp"

var (
	regionRe  = regexp.MustCompile(`^[a-z]{2,}(-[a-z0-9]+){1,4}$`)
	roleArnRe = regexp.MustCompile(`^acs:ram::[0-9]{1,32}:role/[A-Za-z0-9._@/-]{1,128}$`)
)

// ValidRegion reports whether r looks like an Alibaba Cloud region id
// (cn-hangzhou, ap-southeast-1, cn-shanghai-finance-1). Regions build
// endpoint host names, so nothing else may pass.
func ValidRegion(r string) bool { return len(r) <= 40 && regionRe.MatchString(r) }

// ValidRoleArn reports whether s is a RAM role ARN
// (acs:ram::<account-id>:role/<role-name>).
func ValidRoleArn(s string) bool { return roleArnRe.MatchString(s) }
