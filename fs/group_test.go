package fs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Config.GID other than 0 gives that group read access: files 0440 and
// directories 0550, enforced by the kernel (default_permissions). A user in
// the group (as its primary or a supplementary group) reads; a user in
// neither the owner nor the group is refused. GID 0 keeps 0400 and 0500.
func TestGroupReadAccess(t *testing.T) {
	requireFUSE(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to run readers as other users")
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat to run as another user")
	}
	ls, err := exec.LookPath("ls")
	if err != nil {
		t.Skip("no ls to run as another user")
	}
	// A base directory everyone may traverse, so only the view decides.
	base, err := os.MkdirTemp("", "fsview-group-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	const nobody, group, otherGroup = 65534, 4242, 4343
	run := func(cred *syscall.Credential, name string, args ...string) (string, error) {
		cmd := exec.Command(name, args...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	mode := func(t *testing.T, p string) os.FileMode {
		t.Helper()
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		return st.Mode().Perm()
	}

	t.Run("gid", func(t *testing.T) {
		dir := filepath.Join(base, "group")
		e := newEnv(t, appSource(), func(c *Config) {
			c.Mountpoint, c.AllowOther, c.UID, c.GID = dir, true, 0, group
		}, appClass(t))
		file := e.path("app", "db-password")
		for p, want := range map[string]os.FileMode{
			e.dir: 0o550, e.path("app"): 0o550,
			file: 0o440, e.path("app", "param"): 0o440, e.path("app", StatusFile): 0o440,
		} {
			if got := mode(t, p); got != want {
				t.Errorf("%s: mode %o, want %o", p, got, want)
			}
		}
		for _, cred := range []*syscall.Credential{
			{Uid: nobody, Gid: group}, // the primary group
			{Uid: nobody, Gid: nobody, Groups: []uint32{otherGroup, group}}, // a supplementary group
		} {
			if out, err := run(cred, cat, file); err != nil || out != "testpassword" {
				t.Errorf("uid %d gid %d groups %v: %q %v", cred.Uid, cred.Gid, cred.Groups, out, err)
			}
			if out, err := run(cred, ls, e.path("app")); err != nil || !strings.Contains(out, "db-password") {
				t.Errorf("uid %d gid %d groups %v could not list: %q %v", cred.Uid, cred.Gid, cred.Groups, out, err)
			}
		}
		other := &syscall.Credential{Uid: nobody, Gid: otherGroup}
		if out, err := run(other, cat, file); err == nil || !strings.Contains(out, "Permission denied") {
			t.Errorf("a user outside the group read the file: %q %v", out, err)
		}
		if out, err := run(other, ls, e.path("app")); err == nil {
			t.Errorf("a user outside the group listed the class: %q", out)
		}
	})

	t.Run("gid-0", func(t *testing.T) {
		dir := filepath.Join(base, "root")
		e := newEnv(t, appSource(), func(c *Config) {
			c.Mountpoint, c.AllowOther, c.UID, c.GID = dir, true, 0, 0
		}, appClass(t))
		if got := mode(t, e.path("app", "param")); got != 0o400 {
			t.Errorf("file mode %o with gid 0, want 400", got)
		}
		if got := mode(t, e.path("app")); got != 0o500 {
			t.Errorf("directory mode %o with gid 0, want 500", got)
		}
		if out, err := run(&syscall.Credential{Uid: nobody, Gid: 0}, cat, e.path("app", "param")); err == nil {
			t.Errorf("group 0 read the file with gid 0: %q", out)
		}
	})
}
