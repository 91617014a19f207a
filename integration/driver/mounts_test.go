package driver

import (
	"bufio"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

type mountEntry struct{ point, fstype string }

// mountsUnder lists the mount points at or below dir from
// /proc/self/mountinfo, deepest first.
func mountsUnder(t testing.TB, dir string) []mountEntry {
	t.Helper()
	if d, err := filepath.EvalSymlinks(dir); err == nil {
		dir = d
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		// id parent maj:min root mountpoint opts [optional...] - fstype source superopts
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		point := unescapeMountinfo(fields[4])
		fstype := ""
		for i, f := range fields {
			if f == "-" && i+1 < len(fields) {
				fstype = fields[i+1]
				break
			}
		}
		if point == dir || strings.HasPrefix(point, dir+"/") {
			out = append(out, mountEntry{point, fstype})
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].point) > len(out[j].point) })
	return out
}

// unescapeMountinfo undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// tmpfsMounts counts the tmpfs mounts stacked exactly on target.
func tmpfsMounts(t testing.TB, target string) int {
	t.Helper()
	n := 0
	for _, m := range mountsUnder(t, target) {
		if m.fstype == "tmpfs" && (m.point == target || m.point == evalOr(target)) {
			n++
		}
	}
	return n
}

func evalOr(p string) string {
	if d, err := filepath.EvalSymlinks(p); err == nil {
		return d
	}
	return p
}

// unmountAllUnder detaches whatever is still mounted below root: a test that
// fails half way must not leave tmpfs mounts on the machine.
func unmountAllUnder(t testing.TB, root string) {
	t.Helper()
	for _, m := range mountsUnder(t, root) {
		if err := syscall.Unmount(m.point, syscall.MNT_DETACH); err != nil {
			t.Errorf("cleanup: unmount %s: %v", m.point, err)
		} else {
			t.Logf("cleanup: unmounted leftover %s (%s)", m.point, m.fstype)
		}
	}
}
