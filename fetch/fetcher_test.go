package fetch

import (
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
