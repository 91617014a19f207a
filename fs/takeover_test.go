package fs

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// A second Mount on a directory where a live view is served refuses, naming
// the directory, and leaves the live view alone: before, it detached the
// view silently and, when it exited, left nothing mounted there.
func TestLiveViewRefused(t *testing.T) {
	requireFUSE(t)
	first := newEnv(t, appSource(), nil, appClass(t))
	second, err := Mount(Config{Mountpoint: first.dir, Classes: []*spc.Class{appClass(t)}, Fetcher: first.fetcher, Identity: first.id, UID: -1, GID: -1})
	if err == nil {
		_ = second.Close(0)
		t.Fatal("a second Mount took over a live view")
	}
	for _, want := range []string{first.dir, "live"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not say %q: %v", want, err)
		}
	}
	var le *LiveViewError
	if !errors.As(err, &le) || le.Mountpoint != first.dir {
		t.Errorf("the refusal is not a *LiveViewError for %s: %#v", first.dir, err)
	}
	if err := first.srv.Check(); err != nil {
		t.Fatalf("the live view was disturbed: %v", err)
	}
	if got := first.read("app", "param"); got != paramVal {
		t.Fatalf("the live view reads %q", got)
	}
	if types, _ := mountsAt(first.dir); len(types) != 1 {
		t.Fatalf("mounts on the directory: %v", types)
	}
}

// A view whose daemon is alive but does not answer (stopped here with
// SIGSTOP) is live too: Mount refuses it within its probe timeout instead
// of hanging on it or detaching it.
func TestHungLiveViewRefused(t *testing.T) {
	requireFUSE(t)
	dir := filepath.Join(t.TempDir(), "view")
	h := startHelper(t, dir, 0)
	if got, errno := readErrno(filepath.Join(dir, "app", "param")); errno != 0 || got != paramVal {
		t.Fatalf("child view: %q %v", got, errno)
	}
	if err := h.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = h.cmd.Process.Signal(syscall.SIGCONT) }()
	e := newEnv(t, appSource(), nil, appClass(t)) // its fetcher and identity
	start := time.Now()
	srv, err := Mount(Config{Mountpoint: dir, Classes: []*spc.Class{appClass(t)}, Fetcher: e.fetcher, Identity: e.id, UID: -1, GID: -1})
	if err == nil {
		_ = srv.Close(0)
		t.Fatal("Mount took over a live view whose daemon is stopped")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("the refusal took %s", d)
	}
	if !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), "live") {
		t.Errorf("refusal: %v", err)
	}
	if types, _ := mountsAt(dir); len(types) != 1 {
		t.Fatalf("mounts on the directory: %v", types)
	}
	_ = h.cmd.Process.Signal(syscall.SIGCONT)
	if got, errno := readErrno(filepath.Join(dir, "app", "param")); errno != 0 || got != paramVal {
		t.Fatalf("the child's view after SIGCONT: %q %v", got, errno)
	}
}

// What the shutdown warning promises is what happens: once the process has
// exited, a file left open in the detached view keeps the bytes it read
// (the kernel's page cache), and a read the cache cannot answer fails with
// ENOTCONN. The warning used to say open files fail.
func TestOpenFileAfterExitKeepsItsBytes(t *testing.T) {
	requireFUSE(t)
	dir := filepath.Join(t.TempDir(), "view")
	h := startHelper(t, dir, 300*time.Millisecond)
	read, err := os.Open(filepath.Join(dir, "app", "db"))
	if err != nil {
		t.Fatal(err)
	}
	defer read.Close()
	buf := make([]byte, 128)
	if n, _ := read.ReadAt(buf, 0); string(buf[:n]) != dbJSON {
		t.Fatalf("before: %q", buf[:n])
	}
	unread, err := os.Open(filepath.Join(dir, "app", "param"))
	if err != nil {
		t.Fatal(err)
	}
	defer unread.Close()
	_ = h.cmd.Process.Signal(syscall.SIGTERM)
	if code, _ := h.wait(t, 10*time.Second); code != 0 {
		t.Fatalf("exit %d\n%s", code, h.stderr.String())
	}
	if n, _ := read.ReadAt(buf, 0); string(buf[:n]) != dbJSON {
		t.Errorf("the file read before the exit: %q", buf[:n])
	}
	if _, err := unread.ReadAt(buf, 0); !errors.Is(err, syscall.ENOTCONN) {
		t.Errorf("a file never read, after the exit: %v, want ENOTCONN", err)
	}
	logs := h.stderr.String()
	if strings.Contains(logs, "they fail once this process exits") || !strings.Contains(logs, "keep the bytes") || !strings.Contains(logs, "ENOTCONN") {
		t.Errorf("the shutdown warning does not say what happens to open files:\n%s", logs)
	}
}
