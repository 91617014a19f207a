package fs

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// fakeSource is an in-memory upstream: values by name, a version that moves
// on every set, per-name failures and a gate that holds calls.
type fakeSource struct {
	mu      sync.Mutex
	values  map[string]fakeValue
	calls   map[string]int
	fail    map[string]error
	hold    map[string]chan struct{} // Get waits for close (or ctx)
	entered chan string              // receives the name of every held call
}

type fakeValue struct {
	data    []byte
	version int
}

func newFakeSource(values map[string]string) *fakeSource {
	s := &fakeSource{values: map[string]fakeValue{}, calls: map[string]int{}, fail: map[string]error{}, hold: map[string]chan struct{}{}, entered: make(chan string, 64)}
	for k, v := range values {
		s.values[k] = fakeValue{data: []byte(v), version: 1}
	}
	return s
}

func (s *fakeSource) Get(ctx context.Context, _ *auth.Identity, t fetch.Target) (fetch.Result, error) {
	s.mu.Lock()
	s.calls[t.Name]++
	hold := s.hold[t.Name]
	s.mu.Unlock()
	if hold != nil {
		select {
		case s.entered <- t.Name:
		default:
		}
		select {
		case <-hold:
		case <-ctx.Done():
			return fetch.Result{}, &fetch.Error{Kind: fetch.KindUnavailable, Message: "held call canceled", Err: ctx.Err()}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail[t.Name]; err != nil {
		return fetch.Result{}, err
	}
	v, ok := s.values[t.Name]
	if !ok {
		return fetch.Result{}, &fetch.Error{Kind: fetch.KindNotFound, Service: t.Type, Code: "Forbidden.ResourceNotFound", Status: 404, Message: "no such object"}
	}
	return fetch.Result{Data: fetch.Bytes(append([]byte(nil), v.data...)), Version: strconv.Itoa(v.version)}, nil
}

func (s *fakeSource) set(name, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v := s.values[name]
	s.values[name] = fakeValue{data: []byte(value), version: v.version + 1}
}

func (s *fakeSource) setFail(name string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		delete(s.fail, name)
	} else {
		s.fail[name] = err
	}
}

func (s *fakeSource) holdCalls(name string) (release func()) {
	ch := make(chan struct{})
	s.mu.Lock()
	s.hold[name] = ch
	s.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			delete(s.hold, name)
			s.mu.Unlock()
			close(ch)
		})
	}
}

func (s *fakeSource) callCount(name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if name == "" {
		n := 0
		for _, c := range s.calls {
			n += c
		}
		return n
	}
	return s.calls[name]
}

// clock is a settable time source for the cache.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

const testTTL = time.Minute

// env is one mounted view over a fake upstream.
type env struct {
	t       testing.TB
	src     *fakeSource
	clock   *clock
	cache   *fetch.Cache
	fetcher *fetch.Fetcher
	id      *auth.Identity
	dir     string
	srv     *Server
	logs    *syncBuffer
}

// requireFUSE skips when /dev/fuse is absent and fails when it exists but
// cannot be used (the suite runs as root with /dev/fuse).
func requireFUSE(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skipf("skipping: /dev/fuse is absent (%v); the FUSE view tests mount for real", err)
	}
	if ok, why := Usable(); !ok {
		t.Fatalf("/dev/fuse exists but the view cannot mount: %s", why)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testIdentity(t testing.TB) *auth.Identity {
	id, err := auth.StaticAccessKey(auth.ModeStatic, "LTAItestAccessKey0000000", "testSecret", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func mustClass(t testing.TB, name, objects string, extra ...string) *spc.Class {
	t.Helper()
	params := "    objects: |\n" + indent(objects, "      ")
	for _, e := range extra {
		params += "    " + e + "\n"
	}
	doc := fmt.Sprintf("apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata:\n  name: %s\nspec:\n  provider: alibabacloud\n  parameters:\n%s", name, params)
	cs, err := spc.Parse(name+".yaml", []byte(doc))
	if err != nil {
		t.Fatalf("class %s: %v", name, err)
	}
	return cs[0]
}

func indent(s, pre string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString(pre + l + "\n")
	}
	return b.String()
}

// newEnv mounts classes over src on a fresh directory.
func newEnv(t testing.TB, src *fakeSource, mod func(*Config), classes ...*spc.Class) *env {
	t.Helper()
	requireFUSE(t)
	e := &env{t: t, src: src, clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}, logs: &syncBuffer{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.cache = fetch.NewCache(fetch.CacheOptions{TTL: testTTL, Now: e.clock.Now, Logger: log})
	e.fetcher = fetch.NewFetcher(e.cache, src, fetch.FetcherOptions{Region: "cn-hangzhou", Retry: fetch.RetryPolicy{MaxAttempts: 1}, KMSQPS: 1e6, OOSQPS: 1e6})
	e.id = testIdentity(t)
	e.dir = filepath.Join(t.TempDir(), "view")
	cfg := Config{Mountpoint: e.dir, Classes: classes, Fetcher: e.fetcher, Identity: e.id, UID: -1, GID: -1, Logger: log}
	if mod != nil {
		mod(&cfg)
	}
	e.dir = cfg.Mountpoint
	srv, err := Mount(cfg)
	if err != nil {
		t.Fatalf("Mount: %v", err)
	}
	e.srv = srv
	t.Cleanup(func() {
		if err := srv.Close(0); err != nil {
			t.Errorf("Close: %v", err)
		}
		if ms, _ := entriesAt(srv.Mountpoint()); len(ms) > 0 && srv.dev != 0 && ms[len(ms)-1].dev == devString(srv.dev) {
			t.Errorf("still mounted after Close: %v", ms)
		}
	})
	return e
}

func (e *env) path(p ...string) string { return filepath.Join(append([]string{e.dir}, p...)...) }

func (e *env) read(p ...string) string {
	e.t.Helper()
	b, err := os.ReadFile(e.path(p...))
	if err != nil {
		e.t.Fatalf("read %s: %v", filepath.Join(p...), err)
	}
	return string(b)
}

// refresh makes every entry due and runs one refresher pass.
func (e *env) refresh() {
	e.clock.Advance(testTTL)
	e.cache.RefreshNow()
}

// eventually polls cond for up to d.
func eventually(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last: %s", what, d, last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// mountLine returns the /proc/self/mountinfo line of dir.
func mountLine(t testing.TB, dir string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && unescapeMount(fields[4]) == dir {
			return sc.Text()
		}
	}
	return ""
}

// readErrno reads a file and returns the errno of the failure (0 on success).
func readErrno(p string) (string, syscall.Errno) {
	f, err := os.Open(p)
	if err == nil {
		var b []byte
		b, err = io.ReadAll(f)
		f.Close()
		if err == nil {
			return string(b), 0
		}
	}
	var en syscall.Errno
	if errors.As(err, &en) {
		return "", en
	}
	return "", syscall.Errno(0xffff)
}

// countingObserver counts operations by op and errno.
type countingObserver struct {
	mu sync.Mutex
	n  map[string]int
}

func (o *countingObserver) FUSEOp(op string, err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.n == nil {
		o.n = map[string]int{}
	}
	var en syscall.Errno
	errors.As(err, &en)
	o.n[op+"/"+en.Error()]++
}

func (o *countingObserver) count(op string, errno syscall.Errno) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.n[op+"/"+errno.Error()]
}
