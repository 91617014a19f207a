package aliyun

import (
	"strings"
	"testing"
)

func TestValidRegion(t *testing.T) {
	for _, r := range []string{"cn-hangzhou", "ap-southeast-1", "cn-shanghai-finance-1", "us-west-1"} {
		if !ValidRegion(r) {
			t.Errorf("%q refused", r)
		}
	}
	for _, r := range []string{"", "cn", "CN-hangzhou", "cn_hangzhou", "cn-hangzhou.evil.com", "cn-hangzhou/x",
		"a-b-c-d-e-f", "cn-" + strings.Repeat("a", 40), "cn-hangzhou\n"} {
		if ValidRegion(r) {
			t.Errorf("%q accepted", r)
		}
	}
}

func TestValidRoleArn(t *testing.T) {
	for _, s := range []string{"acs:ram::1234567890123456:role/team-a", "acs:ram::1:role/path/to/Role_1@x.y"} {
		if !ValidRoleArn(s) {
			t.Errorf("%q refused", s)
		}
	}
	for _, s := range []string{"", "acs:ram::123:user/x", "acs:ram::abc:role/x", "acs:ram::123:role/", "arn:aws:iam::123:role/x",
		"acs:ram::123:role/x y", "acs:ram::123:role/" + strings.Repeat("a", 129)} {
		if ValidRoleArn(s) {
			t.Errorf("%q accepted", s)
		}
	}
}
