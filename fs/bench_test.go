package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// tmpfsDir returns an empty directory on tmpfs: a fresh tmpfs mount when
// this process may mount, else a directory under /dev/shm.
func tmpfsDir(b *testing.B) string {
	dir := b.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size=64m"); err == nil {
		b.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
		return dir
	}
	var st syscall.Statfs_t
	const tmpfsMagic = 0x01021994
	if err := syscall.Statfs("/dev/shm", &st); err != nil || st.Type != tmpfsMagic {
		b.Skip("no tmpfs to compare with")
	}
	dir, err := os.MkdirTemp("/dev/shm", "fsview-bench-")
	if err != nil {
		b.Skip(err)
	}
	b.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// BenchmarkWarmRead is warm open+read+close of the same 1,000 small files
// (10 classes x 100 objects x 100 bytes) on tmpfs and through the view in
// both modes, in one run. x-tmpfs is the tmpfs ns/op of the same files,
// measured interleaved with the FUSE ops (untimed by b), divided by this
// ns/op (1 = as fast as tmpfs), so load on the machine affects both sides
// alike;
// opens/op and reads/op count the requests that reached the daemon.
//
//	go test -run '^$' -bench BenchmarkWarmRead -benchtime 20000x -count 5 ./fs
func BenchmarkWarmRead(b *testing.B) {
	requireFUSE(b)
	const nClasses, perClass, size = 10, 100, 100
	values := map[string]string{}
	var classes []*spc.Class
	var rel []string
	for c := range nClasses {
		var objs strings.Builder
		for i := range perClass {
			name := fmt.Sprintf("s%02d-%03d", c, i)
			values[name] = strings.Repeat(string(rune('a'+(c+i)%26)), size-1) + "\n"
			fmt.Fprintf(&objs, "- objectName: %s\n", name)
			rel = append(rel, filepath.Join(fmt.Sprintf("c%02d", c), name))
		}
		classes = append(classes, mustClass(b, fmt.Sprintf("c%02d", c), objs.String()))
	}

	tmp := tmpfsDir(b)
	for _, p := range rel {
		if err := os.MkdirAll(filepath.Join(tmp, filepath.Dir(p)), 0o700); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(tmp, p), []byte(values[filepath.Base(p)]), 0o400); err != nil {
			b.Fatal(err)
		}
	}
	keep := newEnv(b, newFakeSource(values), nil, classes...)
	noopen := newEnv(b, newFakeSource(values), func(c *Config) { c.NoOpen = true }, classes...)

	join := func(root string) []string {
		paths := make([]string, len(rel))
		for i, p := range rel {
			paths[i] = filepath.Join(root, p)
		}
		return paths
	}
	tmpPaths := join(tmp)
	run := func(b *testing.B, root string, v *view) {
		paths := join(root)
		buf := make([]byte, 4096)
		once := func(p string) {
			fd, err := syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			for err == syscall.EINTR { // a first lookup interrupted by the Go runtime's SIGURG
				fd, err = syscall.Open(p, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
			}
			if err != nil {
				b.Fatalf("open %s: %v", p, err)
			}
			n, err := syscall.Read(fd, buf)
			if err != nil || n != size {
				b.Fatalf("read %s: %d %v", p, n, err)
			}
			_ = syscall.Close(fd)
		}
		for range 2 { // warm: looked up, fetched, pages cached
			for _, p := range paths {
				once(p)
			}
		}
		var opens, reads int64
		if v != nil {
			for _, p := range tmpPaths { // warm tmpfs too
				once(p)
			}
			opens, reads = v.opens.Load(), v.reads.Load()
		}
		// The FUSE ops run in chunks interleaved with the same number of
		// tmpfs ops (untimed by b, timed apart), so a load swing on the
		// machine hits both sides of the ratio alike.
		const chunk = 500
		var tmpfsTime time.Duration
		b.ResetTimer()
		for i := 0; i < b.N; i += chunk {
			n := min(chunk, b.N-i)
			if v != nil {
				b.StopTimer()
				start := time.Now()
				for j := i; j < i+n; j++ {
					once(tmpPaths[j%len(tmpPaths)])
				}
				tmpfsTime += time.Since(start)
				b.StartTimer()
			}
			for j := i; j < i+n; j++ {
				once(paths[j%len(paths)])
			}
		}
		b.StopTimer()
		if v == nil {
			return
		}
		tmpfsNs := float64(tmpfsTime) / float64(b.N)
		b.ReportMetric(tmpfsNs/(float64(b.Elapsed())/float64(b.N)), "x-tmpfs")
		b.ReportMetric(float64(v.opens.Load()-opens)/float64(b.N), "opens/op")
		b.ReportMetric(float64(v.reads.Load()-reads)/float64(b.N), "reads/op")
	}
	b.Run("tmpfs", func(b *testing.B) { run(b, tmp, nil) })
	b.Run("keepcache", func(b *testing.B) { run(b, keep.dir, keep.srv.v) })
	b.Run("noopen", func(b *testing.B) { run(b, noopen.dir, noopen.srv.v) })
}
