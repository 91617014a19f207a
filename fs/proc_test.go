package fs

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// TestHelperProcess is not a test: the tests below re-exec the test binary
// with FSVIEW_HELPER set to run a view in a process of its own, which they
// then SIGKILL or SIGTERM.
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv("FSVIEW_HELPER")
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	dir := os.Getenv("FSVIEW_DIR")
	grace, _ := time.ParseDuration(os.Getenv("FSVIEW_GRACE"))
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	cache := fetch.NewCache(fetch.CacheOptions{TTL: time.Minute, Logger: log})
	fetcher := fetch.NewFetcher(cache, appSource(), fetch.FetcherOptions{Region: "cn-hangzhou"})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM)
	defer stop()
	go cache.Run(ctx)
	srv, err := Mount(Config{Mountpoint: dir, Classes: []*spc.Class{appClass(t)}, Fetcher: fetcher, Identity: testIdentity(t), UID: -1, GID: -1, Logger: log})
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(3)
	}
	fmt.Println("READY")
	if err := srv.Serve(ctx, grace); err != nil {
		fmt.Println("ERROR", err)
		os.Exit(4)
	}
	fmt.Println("CLOSED")
	os.Exit(0)
}

type helper struct {
	cmd    *exec.Cmd
	lines  chan string
	stderr *syncBuffer
}

// startHelper runs a view in a child process and waits until it mounted.
func startHelper(t *testing.T, dir string, grace time.Duration) *helper {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "FSVIEW_HELPER=serve", "FSVIEW_DIR="+dir, "FSVIEW_GRACE="+grace.String())
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	h := &helper{cmd: cmd, lines: make(chan string, 16), stderr: &syncBuffer{}}
	cmd.Stderr = h.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
		_ = syscall.Unmount(dir, syscall.MNT_DETACH)
	})
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			h.lines <- sc.Text()
		}
		close(h.lines)
	}()
	select {
	case l := <-h.lines:
		if l != "READY" {
			t.Fatalf("helper: %s\n%s", l, h.stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("helper did not mount\n%s", h.stderr.String())
	}
	return h
}

func (h *helper) wait(t *testing.T, d time.Duration) (int, time.Duration) {
	t.Helper()
	start := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- h.cmd.Wait() }()
	select {
	case err := <-errc:
		var ee *exec.ExitError
		if err != nil && !errors.As(err, &ee) {
			t.Fatal(err)
		}
		return h.cmd.ProcessState.ExitCode(), time.Since(start)
	case <-time.After(d):
		t.Fatalf("helper did not exit within %s\n%s", d, h.stderr.String())
	}
	return -1, 0
}

// plainEmptyDir checks dir is no mount point and is empty.
func plainEmptyDir(t *testing.T, dir string) {
	t.Helper()
	var st, pst syscall.Stat_t
	if err := syscall.Stat(dir, &st); err != nil {
		t.Fatalf("mountpoint after exit: %v", err)
	}
	if err := syscall.Stat(filepath.Dir(dir), &pst); err != nil {
		t.Fatal(err)
	}
	if st.Dev != pst.Dev {
		t.Fatalf("mountpoint still on another device (%d, parent %d)", st.Dev, pst.Dev)
	}
	if types, _ := mountsAt(dir); len(types) > 0 {
		t.Fatalf("still in mountinfo: %v", types)
	}
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 0 {
		t.Fatalf("mountpoint not an empty directory: %v %v", ents, err)
	}
}

// A server killed with SIGKILL while a file is open leaves a dead mount
// (ENOTCONN); the next mount on the same directory detaches it (lazily, the
// open file still pins the old one) and serves.
func TestStaleMountRecovered(t *testing.T) {
	requireFUSE(t)
	dir := filepath.Join(t.TempDir(), "view")
	h := startHelper(t, dir, 0)
	if got, errno := readErrno(filepath.Join(dir, "app", "param")); errno != 0 || got != paramVal {
		t.Fatalf("child view: %q %v", got, errno)
	}
	// A reader keeps a file of the view open across the crash.
	held, err := os.Open(filepath.Join(dir, "app", "param"))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = held.Close() }()
	if err := h.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	h.wait(t, 10*time.Second)
	// Anything that needs the server fails: the mount is dead.
	if _, err := os.ReadDir(dir); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL ReadDir = %v, want ENOTCONN (a dead mount)", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "app", "db")); !errors.Is(err, syscall.ENOTCONN) {
		t.Fatalf("after SIGKILL stat = %v, want ENOTCONN (a dead mount)", err)
	}
	if types, _ := mountsAt(dir); len(types) != 1 || types[0] != FSType {
		t.Fatalf("mountinfo after SIGKILL: %v", types)
	}

	// The open file may still read the kernel's cached pages (keep-cache),
	// but it must not keep the new mount out.
	_, _ = held.Read(make([]byte, 16))
	e2 := newEnv(t, appSource(), func(c *Config) { c.Mountpoint = dir }, appClass(t))
	if got := e2.read("app", "param"); got != paramVal {
		t.Fatalf("new mount: %q", got)
	}
	if types, _ := mountsAt(dir); len(types) != 1 || types[0] != FSType {
		t.Fatalf("mountinfo after recovery: %v (want only the new mount)", types)
	}
	if !strings.Contains(e2.logs.String(), "detached a stale FUSE view") {
		t.Fatalf("recovery not logged:\n%s", e2.logs.String())
	}
}

// SIGTERM unmounts and exits 0, leaving an empty plain directory; with a
// file held open the unmount is lazy: the mountpoint empties at once and
// the open file keeps reading during the grace period.
func TestSIGTERMUnmounts(t *testing.T) {
	requireFUSE(t)
	t.Run("idle", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "view")
		h := startHelper(t, dir, 5*time.Second)
		if got, errno := readErrno(filepath.Join(dir, "app", "db-username")); errno != 0 || got != "testuser" {
			t.Fatalf("child view: %q %v", got, errno)
		}
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		code, d := h.wait(t, 10*time.Second)
		if code != 0 {
			t.Fatalf("exit code %d\n%s", code, h.stderr.String())
		}
		if d > 3*time.Second {
			t.Fatalf("idle unmount waited %s (the grace is only for open files)", d)
		}
		plainEmptyDir(t, dir)
	})
	t.Run("file-open", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "view")
		h := startHelper(t, dir, 3*time.Second)
		f, err := os.Open(filepath.Join(dir, "app", "db"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		_ = h.cmd.Process.Signal(syscall.SIGTERM)
		// The lazy unmount empties the mountpoint at once ...
		eventually(t, 5*time.Second, "mountpoint detached", func() (bool, string) {
			types, _ := mountsAt(dir)
			return len(types) == 0, strings.Join(types, ",")
		})
		// ... while the open file still reads.
		buf := make([]byte, 128)
		n, err := f.ReadAt(buf, 0)
		if string(buf[:n]) != dbJSON {
			t.Fatalf("held file during grace: %q %v", buf[:n], err)
		}
		code, _ := h.wait(t, 15*time.Second)
		if code != 0 {
			t.Fatalf("exit code %d\n%s", code, h.stderr.String())
		}
		if !strings.Contains(h.stderr.String(), "detached lazily") {
			t.Fatalf("unmount was not lazy:\n%s", h.stderr.String())
		}
		plainEmptyDir(t, dir)
	})
}

// With allow_other and default_permissions, a user who is not the owner is
// refused (0400 files, 0500 directories); the owner reads.
func TestDefaultPermissionsRefuseOtherUsers(t *testing.T) {
	requireFUSE(t)
	if os.Getuid() != 0 {
		t.Skip("needs root to run a reader as uid 65534")
	}
	cat, err := exec.LookPath("cat")
	if err != nil {
		t.Skip("no cat to run as another user")
	}
	// A base directory everyone may traverse, so only the view decides.
	base, err := os.MkdirTemp("", "fsview-perm-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	if err := os.Chmod(base, 0o755); err != nil {
		t.Fatal(err)
	}
	readAs := func(uid uint32, p string) (string, error) {
		cmd := exec.Command(cat, p)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	const nobody = 65534
	for _, owner := range []int{0, nobody} {
		t.Run("owner-"+strconv.Itoa(owner), func(t *testing.T) {
			dir := filepath.Join(base, "view-"+strconv.Itoa(owner))
			e := newEnv(t, appSource(), func(c *Config) {
				c.Mountpoint, c.AllowOther, c.UID, c.GID = dir, true, owner, owner
			}, appClass(t))
			if line := mountLine(t, dir); !strings.Contains(line, "allow_other") || !strings.Contains(line, "default_permissions") {
				t.Fatalf("mount options: %s", line)
			}
			file := e.path("app", "db-password")
			// Root reads either way (CAP_DAC_OVERRIDE, as on any file).
			if out, err := readAs(0, file); err != nil || out != "testpassword" {
				t.Fatalf("root: %q %v", out, err)
			}
			out, err := readAs(nobody, file)
			if owner == nobody {
				if err != nil || out != "testpassword" {
					t.Fatalf("owner uid %d: %q %v", nobody, out, err)
				}
				return
			}
			if err == nil || !strings.Contains(out, "Permission denied") {
				t.Fatalf("uid %d read a file owned by %d: %q %v", nobody, owner, out, err)
			}
			// Also the status file and the listing.
			if out, err := readAs(nobody, e.path("app", StatusFile)); err == nil {
				t.Fatalf("uid %d read .status: %q", nobody, out)
			}
			ls := exec.Command("ls", e.path("app"))
			ls.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			if out, err := ls.CombinedOutput(); err == nil {
				t.Fatalf("uid %d listed the class: %s", nobody, out)
			}
		})
	}
}

func TestMountInfoParsing(t *testing.T) {
	in := "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - fuse.alibabacloud-secrets csi-secrets-store-provider-alibabacloud rw,user_id=0\n" +
		"37 35 98:0 / /plain rw - ext4 /dev/sda1 rw\n"
	ms := parseMountInfo([]byte(in))
	if len(ms) != 2 || ms[0].mountPoint != "/mnt/with space" || ms[0].fsType != FSType || ms[1].fsType != "ext4" {
		t.Fatalf("%+v", ms)
	}
}

// A second view mounted on the same directory with Takeover takes over (the
// first is detached, its open files keep working); closing the first then
// leaves the successor alone.
func TestSuccessorTakesOver(t *testing.T) {
	requireFUSE(t)
	first := newEnv(t, appSource(), nil, appClass(t))
	if err := first.srv.Check(); err != nil {
		t.Fatalf("first Check: %v", err)
	}
	held, err := os.Open(first.path("app", "param"))
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()

	src2 := appSource()
	src2.set("param", "from-the-successor")
	second := newEnv(t, src2, func(c *Config) { c.Mountpoint, c.Takeover = first.dir, true }, appClass(t))
	if err := second.srv.Check(); err != nil {
		t.Fatalf("second Check: %v", err)
	}
	if !strings.Contains(second.logs.String(), "took over the live FUSE view") {
		t.Errorf("the takeover is not logged:\n%s", second.logs.String())
	}
	if err := first.srv.Check(); err == nil {
		t.Fatal("first Check passes after a successor took over")
	}
	if got := second.read("app", "param"); got != "from-the-successor" {
		t.Fatalf("after takeover: %q", got)
	}
	buf := make([]byte, 64)
	if n, _ := held.ReadAt(buf, 0); string(buf[:n]) != paramVal {
		t.Fatalf("a file held open in the replaced view: %q", buf[:n])
	}
	held.Close()
	if err := first.srv.Close(time.Second); err != nil {
		t.Fatal(err)
	}
	if err := second.srv.Check(); err != nil {
		t.Fatalf("closing the replaced view broke the successor: %v", err)
	}
	if got := second.read("app", "param"); got != "from-the-successor" {
		t.Fatalf("after the old view closed: %q", got)
	}
}
