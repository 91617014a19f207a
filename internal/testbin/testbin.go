// Package testbin builds the provider binary for the end-to-end tests: the
// root module's integration and fs tests and the nested modules
// (integration/driver, integration/k8s, which reach it through their replace
// of the root module). Each distinct build is made once per test process,
// into one temporary directory that Cleanup removes.
//
// It is a plain package, not a _test.go helper, so that the nested modules
// can import it; nothing in the product imports it.
package testbin

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
)

// Cmd is the provider's main package, relative to the repository root.
const Cmd = "./cmd/csi-secrets-store-provider-alibabacloud"

// Name is the binary's file name.
const Name = "csi-secrets-store-provider-alibabacloud"

// Options select a build. The zero value is a plain `go build`.
type Options struct {
	// LDFlags is go build's -ldflags (e.g. "-s -w -X main.version=...").
	LDFlags string
	// Static builds with CGO_ENABLED=0, as the image does.
	Static bool
}

// ErrNoGo is returned when there is no go command to build with; callers
// that can run without the binary skip on it.
var ErrNoGo = errors.New("no go command on PATH to build the provider with")

type build struct {
	once sync.Once
	path string
	err  error
}

var (
	mu     sync.Mutex
	dir    string
	builds = map[Options]*build{}
	n      int
)

// Provider returns the path of the provider binary built with opts, building
// it on the first call for these options. Concurrent callers wait for the
// one build.
func Provider(opts Options) (string, error) {
	mu.Lock()
	b := builds[opts]
	if b == nil {
		b = &build{}
		builds[opts] = b
	}
	mu.Unlock()
	b.once.Do(func() { b.path, b.err = b.run(opts) })
	return b.path, b.err
}

func (b *build) run(opts Options) (string, error) {
	gobin, err := exec.LookPath("go")
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrNoGo, err)
	}
	root, err := Root()
	if err != nil {
		return "", err
	}
	mu.Lock()
	if dir == "" {
		if dir, err = os.MkdirTemp("", "provider-test-bin-"); err != nil {
			mu.Unlock()
			return "", err
		}
	}
	n++
	out := filepath.Join(dir, fmt.Sprint(n), Name)
	mu.Unlock()
	if err := os.MkdirAll(filepath.Dir(out), 0o750); err != nil {
		return "", err
	}
	args := []string{"build", "-buildvcs=false", "-o", out}
	if opts.LDFlags != "" {
		args = append(args, "-ldflags", opts.LDFlags)
	}
	cmd := exec.Command(gobin, append(args, Cmd)...) //nolint:gosec // the go command found on PATH, building this repository's own package
	cmd.Dir = root
	cmd.Env = os.Environ()
	if opts.Static {
		cmd.Env = append(cmd.Env, "CGO_ENABLED=0")
	}
	if msg, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building %s: %w\n%s", Cmd, err, msg)
	}
	return out, nil
}

// Root is the repository root: the root module's directory, found from this
// file's own path (the nested modules replace the root module with ../..).
func Root() (string, error) {
	_, self, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("testbin: cannot locate its own source file")
	}
	root := filepath.Dir(filepath.Dir(filepath.Dir(self)))
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		return "", fmt.Errorf("testbin: no go.mod at the repository root %s (built with -trimpath?): %w", root, err)
	}
	return root, nil
}

// Cleanup removes every binary built; call it from TestMain after m.Run.
func Cleanup() {
	mu.Lock()
	defer mu.Unlock()
	if dir != "" {
		_ = os.RemoveAll(dir)
		dir = ""
	}
	builds = map[Options]*build{}
}

// CopyTree copies the directories and regular files under src to dst, as
// writable copies (module cache files are read-only): the end-to-end suites
// use it to lay our chart and the upstream driver chart side by side, as
// `helm dependency build` would. Anything else (a symlink, a device) is an
// error.
func CopyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o750)
		}
		if !d.Type().IsRegular() {
			return fmt.Errorf("copy %s: not a regular file", p)
		}
		b, err := os.ReadFile(p) //nolint:gosec // test support: copies a tree the caller names
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o600) //nolint:gosec // test support: target is under the dst the caller names
	})
}
