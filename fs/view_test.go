package fs

import (
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

const (
	dbJSON   = `{"username":"testuser","password":"testpassword"}`
	paramVal = "parameter-value"
)

var binaryVal = string([]byte{0x30, 0x82, 0x00, 0xff, 0xfe, '\n', 'k'})

func appClass(t testing.TB) *spc.Class {
	return mustClass(t, "app", `- objectName: db
  objectType: kms
  jmesPath:
    - path: username
      objectAlias: db-username
    - path: password
      objectAlias: db-password
- objectName: param
  objectType: oos
- objectName: dir/key
  objectAlias: tls/key.der
`)
}

func nestedClass(t testing.TB) *spc.Class {
	return mustClass(t, "nested.example", `- objectName: dir/key
`, `pathTranslation: "False"`)
}

func appSource() *fakeSource {
	return newFakeSource(map[string]string{"db": dbJSON, "param": paramVal, "dir/key": binaryVal})
}

func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("ReadDir %s: %v", dir, err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// The view lists exactly the class's file names without any upstream call,
// fetches one object on its first lookup, and reports exact sizes.
func TestListReadExactSizes(t *testing.T) {
	src := appSource()
	e := newEnv(t, src, nil, appClass(t), nestedClass(t))

	if got, want := strings.Join(names(t, e.dir), ","), "app,nested.example"; got != want {
		t.Fatalf("root: %s, want %s", got, want)
	}
	// Same names as a CSI volume of the class gets (fetch's naming rule),
	// plus .status.
	want := append([]string{StatusFile}, e.srv.v.classes[0].class.Spec.Files()...)
	if got := names(t, e.path("app")); strings.Join(got, ",") != ".status,db,db-password,db-username,param,tls_key.der" || len(got) != len(want) {
		t.Fatalf("app: %v, want %v", got, want)
	}
	if got := strings.Join(names(t, e.path("nested.example")), ","); got != ".status,dir" {
		t.Fatalf("nested: %s", got)
	}
	if out, err := exec.Command("ls", "-a", e.path("nested.example", "dir")).CombinedOutput(); err != nil || strings.Join(strings.Fields(string(out)), ",") != ".,..,key" {
		t.Fatalf("ls -a: %q %v", out, err)
	}
	if n := src.callCount(""); n != 0 {
		t.Fatalf("listing made %d upstream calls, want 0", n)
	}
	if err := e.srv.Check(); err != nil {
		t.Fatalf("Check: %v", err)
	}

	st, err := os.Stat(e.path("app", "db-username"))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len("testuser")) {
		t.Fatalf("db-username size %d, want %d", st.Size(), len("testuser"))
	}
	if st.Mode() != 0o400 {
		t.Fatalf("file mode %v, want -r--------", st.Mode())
	}
	if sys := st.Sys().(*syscall.Stat_t); int(sys.Uid) != os.Getuid() || int(sys.Gid) != os.Getgid() {
		t.Fatalf("owner %d:%d, want the caller's", sys.Uid, sys.Gid)
	}
	if src.callCount("db") != 1 || src.callCount("param") != 0 {
		t.Fatalf("one lookup should fetch only its object once: db=%d param=%d", src.callCount("db"), src.callCount("param"))
	}

	for p, want := range map[string]string{
		"app/db": dbJSON, "app/db-username": "testuser", "app/db-password": "testpassword",
		"app/param": paramVal, "app/tls_key.der": binaryVal, "nested.example/dir/key": binaryVal,
	} {
		st, err := os.Stat(e.path(p))
		if err != nil {
			t.Fatal(err)
		}
		if st.Size() != int64(len(want)) {
			t.Errorf("%s: size %d, want %d", p, st.Size(), len(want))
		}
		if got := e.read(p); got != want {
			t.Errorf("%s: read %q, want %q", p, got, want)
		}
	}
	// The jmesPath files derive from the object's one cached value.
	if n := src.callCount("db"); n != 1 {
		t.Fatalf("db fetched %d times, want 1", n)
	}
	if n := src.callCount("dir/key"); n != 1 {
		t.Fatalf("dir/key fetched %d times for two classes, want 1 (one node-wide cache)", n)
	}
	dst, err := os.Stat(e.path("nested.example", "dir"))
	if err != nil {
		t.Fatal(err)
	}
	if dst.Mode() != os.ModeDir|0o500 {
		t.Fatalf("dir mode %v, want dr-x------", dst.Mode())
	}

	// Unknown names are ENOENT without an upstream call; the view is
	// read-only.
	before := src.callCount("")
	if _, err := os.Stat(e.path("app", "nope")); !os.IsNotExist(err) {
		t.Fatalf("unknown name: %v", err)
	}
	if _, err := os.Stat(e.path("nope")); !os.IsNotExist(err) {
		t.Fatalf("unknown class: %v", err)
	}
	if src.callCount("") != before {
		t.Fatal("an unknown name reached upstream")
	}
	if err := os.WriteFile(e.path("app", "db"), []byte("x"), 0o600); err == nil {
		t.Fatal("write succeeded on a read-only view")
	}
	if err := os.WriteFile(e.path("app", "new"), []byte("x"), 0o600); err == nil {
		t.Fatal("create succeeded on a read-only view")
	}

	// Mounted ro,nosuid,nodev,noexec with default_permissions, by mount(2).
	line := mountLine(t, e.dir)
	for _, opt := range []string{"ro", "nosuid", "nodev", "noexec", "default_permissions", FSType, FsName} {
		if !strings.Contains(line, opt) {
			t.Errorf("mountinfo lacks %s: %s", opt, line)
		}
	}
	if strings.Contains(line, "allow_other") {
		t.Errorf("allow_other without --allow-other: %s", line)
	}
}

// A changed upstream value reaches the files after a cache refresh, with the
// new size and a later mtime, in both modes; warm reads in no-open mode
// never reach the daemon.
func TestRotation(t *testing.T) {
	for _, mode := range []string{"keep-cache", "no-open"} {
		t.Run(mode, func(t *testing.T) {
			src := appSource()
			e := newEnv(t, src, func(c *Config) { c.NoOpen = mode == "no-open" }, appClass(t))
			v := e.srv.v

			// Hold files open across the rotation too.
			held, err := os.Open(e.path("app", "db"))
			if err != nil {
				t.Fatal(err)
			}
			defer held.Close()
			if got := e.read("app", "db-username"); got != "testuser" {
				t.Fatalf("before: %q", got)
			}
			st0, _ := os.Stat(e.path("app", "db-username"))
			pst0, _ := os.Stat(e.path("app", "param"))
			_ = e.read("app", "param")

			// Warm: repeated open+read+close.
			opens, reads := v.opens.Load(), v.reads.Load()
			for range 50 {
				if got := e.read("app", "db-username"); got != "testuser" {
					t.Fatalf("warm: %q", got)
				}
			}
			if r := v.reads.Load() - reads; r != 0 {
				t.Errorf("warm reads reached the daemon %d times, want 0 (page cache)", r)
			}
			switch o := v.opens.Load() - opens; {
			case mode == "no-open" && o != 0:
				t.Errorf("no-open: %d OPENs reached the daemon, want 0", o)
			case mode == "keep-cache" && o != 50:
				t.Errorf("keep-cache: %d OPENs, want 50", o)
			}

			newJSON := `{"username":"a-much-longer-user-name","password":"testpassword"}`
			src.set("db", newJSON)
			e.refresh()
			eventually(t, 5*time.Second, "new username", func() (bool, string) {
				got := e.read("app", "db-username")
				return got == "a-much-longer-user-name", got
			})
			st1, err := os.Stat(e.path("app", "db-username"))
			if err != nil {
				t.Fatal(err)
			}
			if st1.Size() != int64(len("a-much-longer-user-name")) {
				t.Fatalf("size after rotation %d, want %d", st1.Size(), len("a-much-longer-user-name"))
			}
			if !st1.ModTime().After(st0.ModTime()) {
				t.Fatalf("mtime did not move: %v -> %v", st0.ModTime(), st1.ModTime())
			}
			if got := e.read("app", "db"); got != newJSON {
				t.Fatalf("db after rotation: %q", got)
			}
			// An unchanged file of the same refresh keeps its mtime; one
			// whose object did not change is untouched.
			if got := e.read("app", "db-password"); got != "testpassword" {
				t.Fatalf("db-password: %q", got)
			}
			pst1, _ := os.Stat(e.path("app", "param"))
			if !pst1.ModTime().Equal(pst0.ModTime()) {
				t.Fatalf("param mtime moved without a change")
			}
			// The held descriptor reads the new bytes too (pages dropped).
			buf := make([]byte, 256)
			n, err := held.ReadAt(buf, 0)
			if err != nil && n == 0 {
				t.Fatal(err)
			}
			if string(buf[:n]) != newJSON {
				t.Fatalf("held fd after rotation: %q", buf[:n])
			}

			// Shrink: no stale tail.
			src.set("db", `{"username":"u","password":"p"}`)
			e.refresh()
			eventually(t, 5*time.Second, "shrunk value", func() (bool, string) {
				got := e.read("app", "db-username")
				return got == "u", got
			})
			if got := e.read("app", "db"); got != `{"username":"u","password":"p"}` {
				t.Fatalf("db after shrink: %q", got)
			}
			var s ClassStatus
			if err := json.Unmarshal([]byte(e.read("app", StatusFile)), &s); err != nil {
				t.Fatal(err)
			}
			if s.Objects[0].Version != "3" || s.Mode != mode {
				t.Fatalf("status after two rotations: version %q mode %q", s.Objects[0].Version, s.Mode)
			}
			if !strings.Contains(e.logs.String(), "kernel cache invalidated") {
				t.Fatalf("no invalidation logged")
			}
		})
	}
}

// A failed refresh keeps the last good value; a file never fetched answers
// EIO; .status says why without printing a value.
func TestErrorsLastGoodAndEIO(t *testing.T) {
	src := appSource()
	src.values["plain"] = fakeValue{data: []byte("not json"), version: 1}
	c := mustClass(t, "err", `- objectName: db
- objectName: missing
- objectName: plain
  jmesPath:
    - path: username
      objectAlias: plain-username
`)
	obs := &countingObserver{}
	e := newEnv(t, src, func(c *Config) { c.Observer = obs }, c)

	if got := e.read("err", "db"); got != dbJSON {
		t.Fatalf("db: %q", got)
	}
	if _, errno := readErrno(e.path("err", "missing")); errno != syscall.EIO {
		t.Fatalf("never fetched: errno %v, want EIO", errno)
	}
	if _, err := os.Stat(e.path("err", "missing")); err == nil {
		t.Fatal("stat of a never fetched file succeeded")
	}
	if obs.count("lookup", syscall.EIO) == 0 || obs.count("lookup", 0) == 0 || obs.count("read", 0) == 0 {
		t.Fatalf("observer: %v", obs.n)
	}
	if got := e.read("err", "plain"); got != "not json" {
		t.Fatalf("plain: %q", got)
	}
	if _, errno := readErrno(e.path("err", "plain-username")); errno != syscall.EIO {
		t.Fatalf("jmesPath of a non-JSON value: errno %v, want EIO", errno)
	}

	src.setFail("db", &fetch.Error{Kind: fetch.KindUnavailable, Status: 503, Code: "ServiceUnavailable", Message: "upstream down"})
	src.set("db", `{"username":"never-served"}`)
	e.refresh()
	if got := e.read("err", "db"); got != dbJSON {
		t.Fatalf("after a failed refresh: %q, want the last good value", got)
	}

	raw := e.read("err", StatusFile)
	st, err := os.Stat(e.path("err", StatusFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Size() != int64(len(raw)) || st.Mode() != 0o400 {
		t.Fatalf(".status: size %d for %d bytes, mode %v", st.Size(), len(raw), st.Mode())
	}
	var s ClassStatus
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf(".status is not JSON: %v\n%s", err, raw)
	}
	byName := map[string]ObjectStatus{}
	for _, o := range s.Objects {
		byName[strings.Split(o.Object, `"`)[1]] = o
	}
	db, missing, plain := byName["db"], byName["missing"], byName["plain"]
	if !db.Fetched || db.Version != "1" || db.LastError == "" || !db.Stale || db.Size != len(dbJSON) {
		t.Fatalf("db status: %+v", db)
	}
	if missing.Fetched || !strings.Contains(missing.LastError, "not-found") {
		t.Fatalf("missing status: %+v", missing)
	}
	if plain.FileError == "" || !plain.Fetched {
		t.Fatalf("plain status: %+v", plain)
	}
	for _, secret := range []string{"testuser", "testpassword", "not json", "never-served"} {
		if strings.Contains(raw, secret) {
			t.Fatalf(".status leaks %q:\n%s", secret, raw)
		}
	}

	// Recovery: the next refresh serves the new value.
	src.setFail("db", nil)
	e.refresh()
	eventually(t, 5*time.Second, "recovered value", func() (bool, string) {
		got := e.read("err", "db")
		return got == `{"username":"never-served"}`, got
	})
	if strings.Contains(e.logs.String(), "testpassword") {
		t.Fatal("a secret value reached the log")
	}
}

// A lookup waits for a first value at most LookupTimeout (then EIO), and an
// interrupted lookup returns EINTR at once; the fetch goes on in the cache.
func TestLookupDeadlineAndInterrupt(t *testing.T) {
	src := newFakeSource(map[string]string{"slow": "s1", "slow2": "s2"})
	e := newEnv(t, src, func(c *Config) { c.LookupTimeout = 400 * time.Millisecond }, mustClass(t, "slow", "- objectName: slow\n- objectName: slow2\n"))
	release := src.holdCalls("slow")
	defer release()

	start := time.Now()
	var st syscall.Stat_t
	err := syscall.Stat(e.path("slow", "slow"), &st)
	if err != syscall.EIO {
		t.Fatalf("held lookup: %v, want EIO", err)
	}
	if d := time.Since(start); d < 350*time.Millisecond || d > 3*time.Second {
		t.Fatalf("held lookup took %s, want about the 400ms deadline", d)
	}
	release()
	eventually(t, 5*time.Second, "value after release", func() (bool, string) {
		got, errno := readErrno(e.path("slow", "slow"))
		return errno == 0 && got == "s1", got + " " + errno.Error()
	})

	// Interrupt: a signal to the thread blocked in the lookup, on a view
	// whose deadline is far away.
	e = newEnv(t, src, func(c *Config) { c.LookupTimeout = 20 * time.Second }, mustClass(t, "slow", "- objectName: slow\n- objectName: slow2\n"))
	release2 := src.holdCalls("slow2")
	defer release2()
	type res struct {
		err error
		d   time.Duration
	}
	tidc := make(chan int, 1)
	done := make(chan res, 1)
	go func() {
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		tidc <- syscall.Gettid()
		start := time.Now()
		var st syscall.Stat_t
		err := syscall.Stat(e.path("slow", "slow2"), &st)
		done <- res{err, time.Since(start)}
	}()
	tid := <-tidc
	select {
	case <-src.entered:
	case <-time.After(5 * time.Second):
		t.Fatal("the lookup never reached upstream")
	}
	var r res
	for i := 0; ; i++ {
		_ = syscall.Tgkill(os.Getpid(), tid, syscall.SIGURG)
		select {
		case r = <-done:
		case <-time.After(100 * time.Millisecond):
			if i < 30 {
				continue
			}
			t.Fatal("the interrupted lookup did not return")
		}
		break
	}
	if !errors.Is(r.err, syscall.EINTR) {
		t.Fatalf("interrupted lookup: %v, want EINTR", r.err)
	}
	if r.d > 10*time.Second {
		t.Fatalf("interrupted lookup took %s", r.d)
	}
	release2()
	eventually(t, 5*time.Second, "value after interrupt", func() (bool, string) {
		got, errno := readErrno(e.path("slow", "slow2"))
		return errno == 0 && got == "s2", got
	})
}

// .status reports versions and fetch times per object, is lazy itself, and
// never holds secret bytes.
func TestStatusFile(t *testing.T) {
	for _, noOpen := range []bool{false, true} {
		t.Run(map[bool]string{false: "keep-cache", true: "no-open"}[noOpen], func(t *testing.T) {
			src := appSource()
			e := newEnv(t, src, func(c *Config) { c.NoOpen = noOpen }, appClass(t))
			var s ClassStatus
			raw := e.read("app", StatusFile)
			if err := json.Unmarshal([]byte(raw), &s); err != nil {
				t.Fatalf("%v\n%s", err, raw)
			}
			if src.callCount("") != 0 {
				t.Fatal(".status fetched something")
			}
			if s.Class != "app" || len(s.Objects) != 3 || s.Objects[0].Fetched || s.Source != "app.yaml" {
				t.Fatalf("before any lookup: %s", raw)
			}
			if got := strings.Join(s.Objects[0].Files, ","); got != "db,db-username,db-password" {
				t.Fatalf("files: %s", got)
			}
			_ = e.read("app", "db-password")
			raw2 := e.read("app", StatusFile)
			if raw2 == raw {
				t.Fatal(".status did not change after a fetch")
			}
			st, err := os.Stat(e.path("app", StatusFile))
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() != int64(len(raw2)) {
				t.Fatalf(".status size %d, content %d bytes", st.Size(), len(raw2))
			}
			s = ClassStatus{}
			if err := json.Unmarshal([]byte(raw2), &s); err != nil {
				t.Fatal(err)
			}
			o := s.Objects[0]
			if !o.Fetched || o.Version != "1" || o.FetchedAt.IsZero() || o.LastError != "" || o.Size != len(dbJSON) {
				t.Fatalf("after lookup: %+v", o)
			}
			for _, secret := range []string{"testuser", "testpassword", paramVal} {
				if strings.Contains(raw2, secret) {
					t.Fatalf(".status leaks %q", secret)
				}
			}
			// Grows with the next refresh's time, and reads stay whole.
			e.refresh()
			for range 5 {
				raw3 := e.read("app", StatusFile)
				if err := json.Unmarshal([]byte(raw3), &s); err != nil {
					t.Fatalf("torn .status: %v\n%s", err, raw3)
				}
			}
		})
	}
}
