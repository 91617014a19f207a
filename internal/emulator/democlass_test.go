package emulator_test

import (
	"testing"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/internal/emulator"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// The demo class is a class every command accepts, and it reads only what
// DemoSeed holds: each object exists, and its jmesPath entries match the
// seeded value.
func TestDemoClassReadsTheDemoSeed(t *testing.T) {
	cs, err := spc.Parse("demo", []byte(emulator.DemoClass))
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || cs[0].Name != "demo" || cs[0].Spec.Region != emulator.DemoRegion {
		t.Fatalf("classes %+v", cs)
	}
	seed := emulator.DemoSeed()
	values := map[fetch.ObjectType]map[string]string{fetch.TypeKMS: {}, fetch.TypeOOS: {}}
	for _, s := range seed.Secrets {
		values[fetch.TypeKMS][s.Name] = s.Value
	}
	for _, p := range seed.Parameters {
		values[fetch.TypeOOS][p.Name] = p.Value
	}
	for _, o := range cs[0].Spec.Objects {
		v, ok := values[o.Type][o.Name]
		if !ok {
			t.Errorf("%s: not in DemoSeed", o.Ref())
			continue
		}
		if _, err := fetch.ObjectFiles(o, &fetch.Entry{Data: fetch.Bytes(v)}); err != nil {
			t.Errorf("%s: against the seeded value: %v", o.Ref(), err)
		}
	}
}
