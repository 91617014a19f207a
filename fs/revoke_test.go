package fs

import (
	"encoding/json"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
)

// When upstream refuses a value for good (access revoked, credential
// rejected, secret deleted), the cache drops it at once; the view must stop
// serving its last snapshot too: reads and stat fail with EIO (what a lookup
// of a value that cannot be fetched answers), the kernel's caches are
// invalidated, and .status says why without a value. When the value comes
// back, the files serve the current value again.
func TestRevokedValueIsNoLongerServed(t *testing.T) {
	for _, tc := range []struct {
		name   string
		revoke func(src *fakeSource)
		reason string
		undo   func(src *fakeSource)
	}{
		{
			name: "permission",
			revoke: func(src *fakeSource) {
				src.setFail("db", &fetch.Error{Kind: fetch.KindPermission, Status: 403, Code: "Forbidden.NoPermission", Message: "access denied"})
			},
			reason: "permission-denied",
			undo:   func(src *fakeSource) { src.setFail("db", nil) },
		},
		{
			name: "deleted",
			revoke: func(src *fakeSource) {
				src.mu.Lock()
				delete(src.values, "db")
				src.mu.Unlock()
			},
			reason: "not-found",
			undo:   func(src *fakeSource) { src.set("db", `{"username":"re-created","password":"p2"}`) },
		},
	} {
		for _, noOpen := range []bool{false, true} {
			mode := "keep-cache"
			if noOpen {
				mode = "no-open"
			}
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				src := appSource()
				c := mustClass(t, "rv", `- objectName: db
  jmesPath:
    - path: username
      objectAlias: db-username
`)
				e := newEnv(t, src, func(c *Config) { c.NoOpen = noOpen }, c)
				if got := e.read("rv", "db"); got != dbJSON {
					t.Fatalf("db: %q", got)
				}
				if got := e.read("rv", "db-username"); got != "testuser" {
					t.Fatalf("db-username: %q", got)
				}

				tc.revoke(src)
				e.refresh()
				for _, f := range []string{"db", "db-username"} {
					eventually(t, 5*time.Second, f+" refused after revocation", func() (bool, string) {
						got, errno := readErrno(e.path("rv", f))
						return errno == syscall.EIO, got + " " + errno.Error()
					})
					if _, err := os.Stat(e.path("rv", f)); err == nil {
						t.Fatalf("stat of revoked %s succeeded", f)
					}
				}
				raw := e.read("rv", StatusFile)
				for _, secret := range []string{"testuser", "testpassword"} {
					if strings.Contains(raw, secret) {
						t.Fatalf(".status leaks %q:\n%s", secret, raw)
					}
				}
				var st ClassStatus
				if err := json.Unmarshal([]byte(raw), &st); err != nil {
					t.Fatalf(".status is not JSON: %v\n%s", err, raw)
				}
				o := st.Objects[0]
				if o.Revoked == "" || !strings.Contains(o.Revoked, tc.reason) || o.Version != "" || o.Size != 0 {
					t.Fatalf("status of a revoked object: %+v", o)
				}

				tc.undo(src)
				e.refresh()
				src.mu.Lock()
				want := src.values["db"]
				src.mu.Unlock()
				eventually(t, 5*time.Second, "served again", func() (bool, string) {
					got, errno := readErrno(e.path("rv", "db"))
					return errno == 0 && got == string(want.data), got + " " + errno.Error()
				})
				var u struct{ Username string }
				_ = json.Unmarshal(want.data, &u)
				if got := e.read("rv", "db-username"); got != u.Username {
					t.Fatalf("db-username after restore: %q, want %q", got, u.Username)
				}
				var after ClassStatus
				if err := json.Unmarshal([]byte(e.read("rv", StatusFile)), &after); err != nil {
					t.Fatal(err)
				}
				if o := after.Objects[0]; o.Revoked != "" || o.Size != len(want.data) {
					t.Fatalf("status after restore: %+v", o)
				}
			})
		}
	}
}
