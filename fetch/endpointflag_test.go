package fetch

import (
	"flag"
	"strings"
	"testing"
)

func TestEndpointFlag(t *testing.T) {
	var e EndpointFlag
	fs := flag.NewFlagSet("x", flag.ContinueOnError)
	fs.Var(&e, "kms-endpoint", "")
	err := fs.Parse([]string{"--kms-endpoint", "kms.cn-hangzhou.aliyuncs.com", "--kms-endpoint", "cn-shanghai=http://127.0.0.1:9",
		"--kms-endpoint", "http://127.0.0.1:8", "--kms-endpoint", "cn-beijing=kms.cn-beijing.aliyuncs.com:443"})
	if err != nil {
		t.Fatal(err)
	}
	if e.Default != "http://127.0.0.1:8" || e.PerRegion["cn-shanghai"] != "http://127.0.0.1:9" || len(e.PerRegion) != 2 {
		t.Fatalf("%+v", e)
	}
	if got := e.String(); got != "http://127.0.0.1:8,cn-beijing=kms.cn-beijing.aliyuncs.com:443,cn-shanghai=http://127.0.0.1:9" {
		t.Fatal(got)
	}
	for _, bad := range []string{"evil.com/x=kms.cn-hangzhou.aliyuncs.com", "cn-shanghai=ftp://x", "http://"} {
		if err := (&EndpointFlag{}).Set(bad); err == nil {
			t.Fatalf("%q accepted", bad)
		} else if strings.Contains(bad, "evil") && !strings.Contains(err.Error(), "region") {
			t.Fatalf("%q: %v", bad, err)
		}
	}
	f := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{KMSEndpoint: e.Default, KMSEndpoints: e.PerRegion})
	if ep := f.serviceEndpoint(TypeKMS, "cn-shanghai"); ep != "http://127.0.0.1:9" {
		t.Fatal(ep)
	}
	if ep := f.serviceEndpoint(TypeKMS, "cn-hangzhou"); ep != "http://127.0.0.1:8" {
		t.Fatal(ep)
	}
	if ep := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{}).serviceEndpoint(TypeOOSParameter, "cn-hangzhou"); ep != DefaultEndpoint(TypeOOS, "cn-hangzhou") {
		t.Fatal(ep)
	}
}
