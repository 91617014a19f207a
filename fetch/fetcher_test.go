package fetch

import (
	"strconv"
	"strings"
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
)

// TestCheckKMSEndpoint: the one allow-list check, as csi asks it and as
// every cache key is built through it.
func TestCheckKMSEndpoint(t *testing.T) {
	f := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{Region: "cn-hangzhou", AllowedKMSEndpoints: []string{" 10.0.0.*:443 "}})
	id := &auth.Identity{Fingerprint: "fp"}
	spec := &Spec{}
	for _, ep := range []string{"", "kst-hzz123abc.cryptoservice.kms.aliyuncs.com", "KMS-VPC.cn-hangzhou.aliyuncs.com:443", "10.0.0.7:443"} {
		o := &Object{Name: "n", Type: TypeKMS, KMSEndpoint: ep}
		if err := f.CheckKMSEndpoint(o); err != nil {
			t.Errorf("%q refused: %v", ep, err)
		}
		if _, _, err := f.Key(id, spec, o); err != nil {
			t.Errorf("Key with %q: %v", ep, err)
		}
	}
	for _, ep := range []string{"169.254.169.254", "http://kms.cn-hangzhou.aliyuncs.com", "kms.cn-hangzhou.aliyuncs.com.evil.com", "10.0.0.7:8443"} {
		o := &Object{Name: "n", Type: TypeKMS, KMSEndpoint: ep}
		err := f.CheckKMSEndpoint(o)
		if KindOf(err) != KindInvalid || !strings.Contains(err.Error(), "--allowed-kms-endpoints") {
			t.Errorf("%q: %v, want an invalid error naming --allowed-kms-endpoints", ep, err)
		}
		if _, _, kerr := f.Key(id, spec, o); kerr == nil || kerr.Error() != err.Error() {
			t.Errorf("Key with %q: %v, want the same refusal", ep, kerr)
		}
	}
}

// TestParseMemoIsTheFetchers: the Mount path's memo of successful parses
// lives in the Fetcher that cmd builds, not in a package global: the same
// parameters give the same Spec from one fetcher, a new fetcher starts
// empty, failures are not remembered, and the package function always
// parses.
func TestParseMemoIsTheFetchers(t *testing.T) {
	params := map[string]string{ParamObjects: "- objectName: db\n", ParamRegion: "cn-hangzhou"}
	f1 := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{})
	f2 := NewFetcher(NewCache(CacheOptions{}), nil, FetcherOptions{})
	a, err := f1.ParseParameters(params)
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := f1.ParseParameters(params); b != a {
		t.Fatal("the same fetcher parsed the same parameters twice")
	}
	if c, _ := f2.ParseParameters(params); c == a {
		t.Fatal("two fetchers share a memo")
	}
	if d, _ := ParseParameters(params); d == a {
		t.Fatal("the package's ParseParameters answered from a memo")
	}
	bad := map[string]string{ParamObjects: "- objectName: /etc/passwd\n"}
	for range 2 {
		if _, err := f1.ParseParameters(bad); !IsValidation(err) {
			t.Fatalf("bad parameters: %v", err)
		}
	}
	if n := f1.specs.m.Len(); n != 1 {
		t.Fatalf("%d parses remembered, want 1 (failures are not)", n)
	}
	for i := range maxParsed + 1 {
		p := map[string]string{ParamObjects: "- objectName: db" + strconv.Itoa(i) + "\n"}
		if _, err := f1.ParseParameters(p); err != nil {
			t.Fatal(err)
		}
	}
	if n := f1.specs.m.Len(); n > maxParsed {
		t.Fatalf("%d parses remembered, over the bound %d", n, maxParsed)
	}
	// Large classes (pod authors can send many) have a small map of their own.
	pad := "\n# " + strings.Repeat("x", largeParams)
	for i := range maxParsedLarge + 3 {
		p := map[string]string{ParamObjects: "- objectName: big" + strconv.Itoa(i) + pad}
		s1, err := f1.ParseParameters(p)
		if err != nil {
			t.Fatal(err)
		}
		if s2, _ := f1.ParseParameters(p); s2 != s1 {
			t.Fatal("a large class is not remembered at all")
		}
	}
	if n := f1.specs.large.Len(); n != maxParsedLarge {
		t.Fatalf("%d large parses remembered, want the bound %d", n, maxParsedLarge)
	}
	if n := f1.specs.m.Len(); n > maxParsed {
		t.Fatalf("large classes went into the small classes' memo: %d", n)
	}
	var nilFetcher *Fetcher
	if s, err := nilFetcher.ParseParameters(params); err != nil || len(s.Objects) != 1 {
		t.Fatalf("a nil Fetcher: %v", err)
	}
}
