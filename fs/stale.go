// This file holds the view's checks of the host and its mount table. None of
// them touches a mounted view (that would block on a hung server); they decide
// from /dev/fuse and /proc alone:
//
//   - Usable: whether this process can mount at all (/dev/fuse opens and the
//     process holds CAP_SYS_ADMIN), with the reason when it cannot.
//   - DetachStale: lazily detaches a view left on a mount point by a crashed
//     or replaced process, before a new one is mounted there.
//   - The /proc/self/mountinfo parser behind DetachStale (mountEntry,
//     entriesAt, devString), which Server.Check also uses to confirm that its
//     own mount is still the one on top of the mount point.

package fs

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Usable reports whether this process can mount the view: /dev/fuse opens
// read-write and the process holds CAP_SYS_ADMIN (the view calls mount(2)
// itself; fusermount is never used). The string says why not, or what was
// checked.
func Usable() (bool, string) {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		switch {
		case errors.Is(err, os.ErrNotExist):
			return false, "/dev/fuse does not exist (load the fuse module; in a container pass the device, e.g. --device /dev/fuse or a hostPath CharDevice)"
		case errors.Is(err, os.ErrPermission):
			return false, "/dev/fuse cannot be opened: permission denied (run as root, or allow the device in the container's device cgroup)"
		}
		return false, fmt.Sprintf("/dev/fuse cannot be opened: %v", err)
	}
	_ = f.Close()
	if ok, known := hasCapSysAdmin(); known && !ok {
		return false, "no CAP_SYS_ADMIN: the view calls mount(2) itself (run as root, or give the container privileged or CAP_SYS_ADMIN)"
	}
	return true, "/dev/fuse is usable and the process may mount"
}

// hasCapSysAdmin reads the effective capability set of this process.
func hasCapSysAdmin() (ok, known bool) {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return false, false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, found := strings.CutPrefix(line, "CapEff:"); found {
			v, err := strconv.ParseUint(strings.TrimSpace(rest), 16, 64)
			if err != nil {
				return false, false
			}
			const capSysAdmin = 21
			return v&(1<<capSysAdmin) != 0, true
		}
	}
	return false, false
}

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	dev        string // major:minor
	mountPoint string
	fsType     string
	source     string
}

// readMountInfo parses /proc/self/mountinfo.
func readMountInfo() ([]mountEntry, error) {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	return parseMountInfo(data), nil
}

// parseMountInfo reads mountinfo lines: "id parent major:minor root
// mountpoint options [optional...] - fstype source superoptions".
func parseMountInfo(data []byte) []mountEntry {
	var out []mountEntry
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 7 {
			continue
		}
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if sep < 0 || sep+2 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{
			dev:        fields[2],
			mountPoint: unescapeMount(fields[4]),
			fsType:     fields[sep+1],
			source:     unescapeMount(fields[sep+2]),
		})
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsAt lists the file system types mounted on dir, bottom first.
func mountsAt(dir string) ([]string, error) {
	ms, err := entriesAt(dir)
	if err != nil {
		return nil, err
	}
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.fsType
	}
	return out, nil
}

// entriesAt lists the mounts on dir, bottom first.
func entriesAt(dir string) ([]mountEntry, error) {
	ms, err := readMountInfo()
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, m := range ms {
		if m.mountPoint == dir {
			out = append(out, m)
		}
	}
	return out, nil
}

// devString formats st_dev as mountinfo's major:minor (glibc's encoding).
func devString(dev uint64) string {
	major := (dev>>8)&0xfff | (dev>>32)&^uint64(0xfff)
	minor := dev&0xff | (dev>>12)&^uint64(0xff)
	return strconv.FormatUint(major, 10) + ":" + strconv.FormatUint(minor, 10)
}

// DetachStale lazily unmounts (MNT_DETACH) every mount of this view found
// on dir: one left by a crashed process (its connection is dead, so
// accesses that reach it fail with ENOTCONN), or a live one whose process is
// being replaced (its open files keep working until closed). It decides from
// /proc/self/mountinfo alone and never touches the mount, which would block
// on a hung server. Any other file system mounted on dir is an error. It
// returns how many mounts it detached; dir must be absolute and clean.
func DetachStale(dir string) (int, error) {
	n := 0
	for range 16 { // mounts can be stacked; bounded
		types, err := mountsAt(dir)
		if err != nil {
			return n, fmt.Errorf("fuse view: read /proc/self/mountinfo: %w", err)
		}
		if len(types) == 0 {
			return n, nil
		}
		if top := types[len(types)-1]; top != FSType {
			return n, fmt.Errorf("fuse view: %s is already a mount point (%s); unmount it or choose another --mountpoint", dir, top)
		}
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			if errors.Is(err, syscall.EINVAL) {
				continue // raced with another unmount; look again
			}
			return n, fmt.Errorf("fuse view: detach the stale mount on %s: %w", dir, err)
		}
		n++
	}
	return n, fmt.Errorf("fuse view: %s still has mounts after %d detaches", dir, n)
}
