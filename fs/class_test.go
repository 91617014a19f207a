package fs

import (
	"strings"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// The view's own rules on top of spc's: names differ (one directory each)
// and no file takes the status file's name. Mount refuses such classes too.
func TestCheckClasses(t *testing.T) {
	app := mustClass(t, "app", "- objectName: db")
	other := mustClass(t, "app", "- objectName: other")
	other.Source = "b.yaml"
	status := mustClass(t, "st", "- objectName: db\n  objectAlias: .status")
	jmes := mustClass(t, "jm", "- objectName: db\n  jmesPath:\n    - {path: a, objectAlias: .status}")
	fetcher := fetch.NewFetcher(fetch.NewCache(fetch.CacheOptions{TTL: time.Minute}), appSource(), fetch.FetcherOptions{Region: "cn-hangzhou"})
	for _, c := range []struct {
		name string
		cs   []*spc.Class
		want string
	}{
		{"ok", []*spc.Class{app}, ""},
		{"dup", []*spc.Class{app, other}, `b.yaml: SecretProviderClass "app": metadata.name: is also the name of a class in app.yaml`},
		{"status", []*spc.Class{status}, `st.yaml: SecretProviderClass "st": spec.parameters.objects[0]: file ".status" is reserved`},
		{"jmesPath", []*spc.Class{jmes}, `jm.yaml: SecretProviderClass "jm": spec.parameters.objects[0]: file ".status" is reserved`},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckClasses(c.cs)
			if c.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want %q", err, c.want)
			}
			if _, err := Mount(Config{Mountpoint: t.TempDir(), Classes: c.cs, Fetcher: fetcher, Identity: testIdentity(t)}); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Mount: %v, want %q", err, c.want)
			}
		})
	}
}
