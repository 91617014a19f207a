// This file holds the view's checks of the host and its mount table. They
// decide from /dev/fuse and /proc, and touch a mounted view only with one
// statfs(2) bounded by a timeout (an unbounded access would block on a hung
// server):
//
//   - Usable: whether this process can mount at all (/dev/fuse opens and the
//     process holds CAP_SYS_ADMIN), with the reason when it cannot.
//   - DetachStale: lazily detaches a view left on a mount point by a crashed
//     process (its daemon is gone), before a new one is mounted there; a
//     live view is refused (LiveViewError) unless the caller takes it over.
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
	"time"
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

// LiveViewError is DetachStale's refusal of a view that is still served:
// its daemon answers, or is alive and does not answer (stopped or hung).
type LiveViewError struct {
	Mountpoint string
	Why        string // "its daemon answers", ...
}

func (e *LiveViewError) Error() string {
	return fmt.Sprintf("fuse view: a live FUSE view is already mounted on %s (%s): another process (mount, or serve --fuse-mountpoint) serves it", e.Mountpoint, e.Why)
}

// Detached counts the mounts DetachStale removed.
type Detached struct {
	Stale int // dead views: their daemon was gone
	Live  int // live views taken over
}

// probeTimeout bounds the statfs(2) that tells a live view from a dead one.
const probeTimeout = 2 * time.Second

// probeView reports whether the view on top of dir still has its daemon.
// The kernel never answers statfs(2) from a cache: it asks the daemon, and
// once the daemon is gone (its /dev/fuse closed, which aborts the
// connection) it fails at once with ENOTCONN. A daemon that answers is live,
// and so is one that has not answered within probeTimeout: it is alive but
// stopped or hung (the probe's thread stays blocked until it answers or
// dies; the caller refuses and usually exits). Any other error is taken as
// live too: only a view known to be dead is detached without being asked.
func probeView(dir string) (live bool, why string) {
	done := make(chan error, 1)
	go func() {
		var st syscall.Statfs_t
		done <- syscall.Statfs(dir, &st)
	}()
	t := time.NewTimer(probeTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		switch {
		case err == nil:
			return true, "its daemon answers"
		case errors.Is(err, syscall.ENOTCONN), errors.Is(err, syscall.ECONNABORTED):
			return false, "its daemon is gone"
		}
		return true, fmt.Sprintf("statfs: %v", err)
	case <-t.C:
		return true, fmt.Sprintf("its daemon is alive but has not answered statfs within %s: stopped or hung", probeTimeout)
	}
}

// DetachStale lazily unmounts (MNT_DETACH) every mount of this view found
// on dir whose daemon is gone: one left by a crashed process, whose
// accesses fail with ENOTCONN. A live view (probeView) is refused with a
// *LiveViewError, unless takeover is set: then it is detached too, its open
// files keep their connection until closed, and its process no longer
// serves dir. It reads /proc/self/mountinfo and touches a view only with
// probeView's bounded statfs, never with takeover. Any other file system
// mounted on dir is an error. dir must be absolute and clean.
func DetachStale(dir string, takeover bool) (Detached, error) {
	var d Detached
	for range 16 { // mounts can be stacked; bounded
		types, err := mountsAt(dir)
		if err != nil {
			return d, fmt.Errorf("fuse view: read /proc/self/mountinfo: %w", err)
		}
		if len(types) == 0 {
			return d, nil
		}
		if top := types[len(types)-1]; top != FSType {
			return d, fmt.Errorf("fuse view: %s is already a mount point (%s); unmount it or choose another --mountpoint", dir, top)
		}
		live := true
		if !takeover {
			var why string
			if live, why = probeView(dir); live {
				return d, &LiveViewError{Mountpoint: dir, Why: why}
			}
		}
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			if errors.Is(err, syscall.EINVAL) {
				continue // raced with another unmount; look again
			}
			return d, fmt.Errorf("fuse view: detach the mount on %s: %w", dir, err)
		}
		if live {
			d.Live++
		} else {
			d.Stale++
		}
	}
	return d, fmt.Errorf("fuse view: %s still has mounts after %d detaches", dir, d.Stale+d.Live)
}
