package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"path"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// view is the state behind one mount: the static tree built from the
// classes, one objView per object (its pinned cache key and the immutable
// snapshot the handlers serve), and the notifier's queue.
type view struct {
	cfg       Config
	fetcher   *fetch.Fetcher
	cache     *fetch.Cache
	id        *auth.Identity
	log       *slog.Logger
	root      *dirRec
	classes   []*classView
	mountedAt time.Time
	uid, gid  uint32
	// Permission bits of files and directories: the owner's alone, or
	// the group's too when gid is not 0 (see nodes.go).
	fileMode, dirMode uint32

	keysMu sync.RWMutex
	byKey  map[fetch.Key][]*objView

	queue notifyQueue

	// Requests that reached the daemon (tests and the benchmark show that
	// warm reads do not).
	opens, reads, lookups atomic.Int64
}

// classView is one class: its directory and its objects.
type classView struct {
	class  *spc.Class
	dir    *dirRec
	objs   []*objView
	status statusMemo
	ino    uint64 // of the .status file
}

// dirRec is one directory of the static tree. Names never change while
// mounted: listing comes from the classes, never from upstream.
type dirRec struct {
	name  string
	ino   uint64
	up    uint64 // the parent's inode number (the root's own)
	dirs  map[string]*dirRec
	files map[string]*fileRec
	class *classView // set on a class's top directory (it holds .status)
	names []string   // sorted, for Readdir
	nlink uint32     // 2 + subdirectories
	inode *gofs.Inode
}

// fileRec is one file: the object it comes from and which of its files.
type fileRec struct {
	obj  *objView
	idx  int // 0: the whole value; j+1: jmesPath[j]
	path string
	name string
	ino  uint64
	dir  *dirRec
}

// objView is one object of a class. Its snapshot is replaced (never
// mutated) by a lookup's first fetch and by the notifier.
type objView struct {
	cls   *classView
	o     *fetch.Object
	files []*fileRec

	snap atomic.Pointer[snapshot]

	mu        sync.Mutex // guards the fields below and snapshot replacement
	key       fetch.Key
	pinned    bool
	unpin     func()
	lastErr   string
	lastErrAt time.Time
}

// snapshot is what the handlers serve for one object: the cache entry it
// was derived from and the bytes of each of the object's files.
type snapshot struct {
	entry *fetch.Entry
	data  [][]byte    // per file; nil when the file could never be derived
	mtime []time.Time // per file; moves only when that file's bytes change
	derr  error       // jmesPath derivation error of this entry, if any
	// gone is set when upstream refused the value for good (deleted,
	// access revoked, credential rejected): entry is the value dropped,
	// data is all nil (the files answer EIO) until a newer entry comes.
	gone error
}

func newView(cfg Config) (*view, error) {
	v := &view{
		cfg:       cfg,
		fetcher:   cfg.Fetcher,
		cache:     cfg.Fetcher.Cache(),
		id:        cfg.Identity,
		log:       cfg.Logger,
		mountedAt: time.Now(),
		byKey:     map[fetch.Key][]*objView{},
	}
	for _, id := range []struct {
		name string
		v    int
		out  *uint32
	}{{"uid", cfg.UID, &v.uid}, {"gid", cfg.GID, &v.gid}} {
		if id.v < 0 || id.v > math.MaxUint32 {
			return nil, fmt.Errorf("fuse view: %s %d is out of range", id.name, id.v)
		}
		*id.out = uint32(id.v)
	}
	v.fileMode, v.dirMode = fileMode, dirMode
	if v.gid != 0 {
		v.fileMode, v.dirMode = groupFileMode, groupDirMode
	}
	v.queue.init()
	ino := uint64(1) // FUSE root
	next := func() uint64 { ino++; return ino }
	v.root = &dirRec{ino: 1, up: 1, dirs: map[string]*dirRec{}, files: map[string]*fileRec{}}
	for _, c := range cfg.Classes {
		cv := &classView{class: c}
		d := &dirRec{name: c.Name, ino: next(), up: v.root.ino, dirs: map[string]*dirRec{}, files: map[string]*fileRec{}, class: cv}
		cv.dir = d
		cv.ino = next()
		v.root.dirs[c.Name] = d
		for _, o := range c.Spec.Objects {
			// Validate region and endpoints now, so a bad class fails the
			// mount instead of every lookup. No upstream call.
			if _, _, err := v.fetcher.Key(v.id, c.Spec, o); err != nil {
				return nil, &spc.Error{Source: c.Source, Class: c.Name, Field: fmt.Sprintf("spec.parameters.objects[%d]", o.Index), Msg: err.Error()}
			}
			ov := &objView{cls: cv, o: o}
			for i, p := range o.Paths() {
				dir, name := d, p
				if parts := strings.Split(p, "/"); len(parts) > 1 {
					for _, seg := range parts[:len(parts)-1] {
						sub, ok := dir.dirs[seg]
						if !ok {
							sub = &dirRec{name: seg, ino: next(), up: dir.ino, dirs: map[string]*dirRec{}, files: map[string]*fileRec{}}
							dir.dirs[seg] = sub
						}
						dir = sub
					}
					name = parts[len(parts)-1]
				}
				if _, dup := dir.files[name]; dup || dir.dirs[name] != nil {
					// fetch.ParseParameters refuses collisions; keep the
					// tree honest anyway.
					return nil, &spc.Error{Source: c.Source, Class: c.Name, Field: "spec.parameters", Msg: fmt.Sprintf("file %q appears twice", p)}
				}
				f := &fileRec{obj: ov, idx: i, path: p, name: name, ino: next(), dir: dir}
				dir.files[name] = f
				ov.files = append(ov.files, f)
			}
			cv.objs = append(cv.objs, ov)
		}
		v.classes = append(v.classes, cv)
	}
	var sortNames func(d *dirRec)
	sortNames = func(d *dirRec) {
		d.nlink = 2
		for n, sub := range d.dirs {
			d.nlink++
			d.names = append(d.names, n)
			sortNames(sub)
		}
		for n := range d.files {
			d.names = append(d.names, n)
		}
		if d.class != nil {
			d.names = append(d.names, StatusFile)
		}
		sort.Strings(d.names)
	}
	sortNames(v.root)
	return v, nil
}

// paths lists every file of the view, relative to the mountpoint.
func (v *view) paths() []string {
	var out []string
	for _, cv := range v.classes {
		for _, o := range cv.objs {
			for _, f := range o.files {
				out = append(out, path.Join(cv.class.Name, f.path))
			}
		}
		out = append(out, path.Join(cv.class.Name, StatusFile))
	}
	return out
}

// ensure returns the object's snapshot for a lookup. The first lookup
// fetches through the cache under the lookup deadline; later ones only peek
// at the cache (no network): the pin keeps the entry refreshed and the
// notifier applies changes.
func (v *view) ensure(ctx context.Context, ov *objView) (*snapshot, syscall.Errno) {
	if s := ov.snap.Load(); s != nil {
		if k, ok := ov.currentKey(); ok {
			if e, ok := v.cache.Peek(k); ok && e != s.entry {
				s, _ = ov.apply(e, v.log)
			}
		}
		return s, 0
	}
	lctx, cancel := context.WithTimeout(ctx, v.cfg.LookupTimeout)
	defer cancel()
	k, e, _, err := v.fetcher.FetchObject(lctx, v.id, ov.cls.class.Spec, ov.o)
	if err != nil {
		if s := ov.snap.Load(); s != nil { // filled meanwhile (another lookup, an event)
			return s, 0
		}
		if ctx.Err() != nil {
			// The caller was interrupted; the fetch goes on in the
			// cache and serves the next lookup.
			return nil, syscall.EINTR
		}
		if errors.Is(err, context.DeadlineExceeded) {
			err = fmt.Errorf("no value within the lookup deadline (%s); the fetch goes on and the next lookup may find it: %w", v.cfg.LookupTimeout, err)
		}
		ov.recordErr(err)
		v.log.Warn("FUSE lookup failed; the file answers EIO until a value is fetched",
			"class", ov.cls.class.Name, "object", ov.o.Ref(), "kind", fetch.KindOf(err).String(), "error", err.Error())
		return nil, syscall.EIO
	}
	v.track(ov, k)
	// A refresh (by another reader of the same key) may have published
	// a newer value between the fetch and track, its event unrouted:
	// serve the newest. The kernel has no inode for these files yet, so
	// nothing needs invalidating.
	if ne, ok := v.cache.Peek(k); ok && ne.FetchedAt.After(e.FetchedAt) {
		e = ne
	}
	s, _ := ov.apply(e, v.log)
	return s, 0
}

// observe reports one answered operation.
func (v *view) observe(op string, errno syscall.Errno) {
	if v.cfg.Observer != nil {
		v.cfg.Observer.FUSEOp(op, errno)
	}
}

// currentKey is the cache key the object was last served from.
func (ov *objView) currentKey() (fetch.Key, bool) {
	ov.mu.Lock()
	defer ov.mu.Unlock()
	return ov.key, ov.pinned
}

func (ov *objView) recordErr(err error) {
	ov.mu.Lock()
	ov.lastErr, ov.lastErrAt = err.Error(), time.Now()
	ov.mu.Unlock()
}

// track pins the object's cache key (kernel-cached reads never reach the
// cache, so only the pin keeps it refreshed) and routes the key's events to
// this object.
func (v *view) track(ov *objView, k fetch.Key) {
	ov.mu.Lock()
	if ov.pinned && ov.key == k {
		ov.mu.Unlock()
		return
	}
	old, oldPinned, oldUnpin := ov.key, ov.pinned, ov.unpin
	var unpin func()
	if ov.o.CrossAccountRoleArn == "" {
		if _, u, err := v.fetcher.Pin(v.id, ov.cls.class.Spec, ov.o); err == nil {
			unpin = u
		}
	}
	if unpin == nil {
		// The key of an assumed role is only known after a fetch; the
		// record exists now and keeps the fetch function of that fetch.
		unpin = v.cache.Pin(k, nil)
	}
	ov.key, ov.pinned, ov.unpin = k, true, unpin
	ov.lastErr, ov.lastErrAt = "", time.Time{}
	ov.mu.Unlock()
	if oldUnpin != nil {
		oldUnpin()
	}

	v.keysMu.Lock()
	defer v.keysMu.Unlock()
	if oldPinned {
		list := v.byKey[old]
		for i, x := range list {
			if x == ov {
				list = append(list[:i:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(v.byKey, old)
		} else {
			v.byKey[old] = list
		}
	}
	v.byKey[k] = append(v.byKey[k], ov)
}

// unpinAll releases every pin (at unmount).
func (v *view) unpinAll() {
	for _, cv := range v.classes {
		for _, ov := range cv.objs {
			ov.mu.Lock()
			u := ov.unpin
			ov.unpin, ov.pinned = nil, false
			ov.mu.Unlock()
			if u != nil {
				u()
			}
		}
	}
}

// apply publishes the snapshot of entry e unless the current one is the
// same entry or a newer one. It reports whether any file's bytes changed.
// Files keep their last good bytes when a jmesPath cannot be derived from
// e. No notification happens here: the notifier sends them after apply,
// outside any lock.
func (ov *objView) apply(e *fetch.Entry, log *slog.Logger) (*snapshot, bool) {
	ov.mu.Lock()
	defer ov.mu.Unlock()
	cur := ov.snap.Load()
	if cur != nil && (cur.entry == e || e.FetchedAt.Before(cur.entry.FetchedAt)) {
		return cur, false
	}
	n := len(ov.files)
	ns := &snapshot{entry: e, data: make([][]byte, n), mtime: make([]time.Time, n)}
	if e.Absent {
		// An optional object that does not exist: served like a value
		// refused upstream, until it is created.
		ns.gone = &fetch.Error{Kind: fetch.KindNotFound, Message: "the optional object does not exist upstream (object version " + e.Version + ")"}
		for i := range ns.mtime {
			ns.mtime[i] = e.FetchedAt
		}
		ov.snap.Store(ns)
		return ns, cur != nil && cur.gone == nil
	}
	files, derr := fetch.ObjectFiles(ov.o, e)
	if derr == nil && len(files) == n {
		for i, f := range files {
			ns.data[i] = nonNil(f.Data)
		}
	} else {
		if derr == nil {
			derr = fmt.Errorf("%d files derived, want %d", len(files), n)
		}
		ns.derr = derr
		ns.data[0] = nonNil(e.Data)
		for i := 1; i < n; i++ {
			if cur != nil {
				ns.data[i] = cur.data[i] // last good
			}
		}
		if cur == nil || cur.derr == nil || cur.derr.Error() != derr.Error() {
			log.Warn("jmesPath files keep their last good value: the new value does not yield them",
				"class", ov.cls.class.Name, "object", ov.o.Ref(), "version", e.Version, "error", derr.Error())
		}
	}
	changed := false
	now := time.Now()
	for i := range ns.data {
		switch {
		case cur == nil:
			ns.mtime[i] = e.FetchedAt
		case bytes.Equal(cur.data[i], ns.data[i]) && (cur.data[i] == nil) == (ns.data[i] == nil):
			ns.mtime[i] = cur.mtime[i]
		default:
			changed = true
			// Strictly later than before, so the kernel's automatic
			// invalidation (mtime or size changed) also sees it.
			ns.mtime[i] = now
			if !now.After(cur.mtime[i]) {
				ns.mtime[i] = cur.mtime[i].Add(time.Microsecond)
			}
		}
	}
	ov.snap.Store(ns)
	return ns, changed
}

// revoke publishes a snapshot without bytes: upstream refused the value
// old for good and the cache dropped it. It reports whether any file had
// bytes to stop serving. A newer entry (apply) serves the files again.
func (ov *objView) revoke(old *fetch.Entry, err error) bool {
	ov.mu.Lock()
	defer ov.mu.Unlock()
	cur := ov.snap.Load()
	if cur != nil && cur.gone != nil {
		return false
	}
	if cur != nil && (old == nil || cur.entry.FetchedAt.After(old.FetchedAt)) {
		old = cur.entry // the refusal ends whatever is served
	}
	if old == nil {
		old = &fetch.Entry{}
	}
	n := len(ov.files)
	ns := &snapshot{entry: old, data: make([][]byte, n), mtime: make([]time.Time, n), gone: err}
	had := false
	now := time.Now()
	for i := range ns.mtime {
		ns.mtime[i] = now
		if cur != nil {
			had = had || cur.data[i] != nil
			if !now.After(cur.mtime[i]) {
				ns.mtime[i] = cur.mtime[i].Add(time.Microsecond)
			}
		}
	}
	ov.snap.Store(ns)
	return had
}

// fileData returns a file's current bytes and mtime, never fetching.
func (f *fileRec) fileData() ([]byte, time.Time, bool) {
	s := f.obj.snap.Load()
	if s == nil || s.data[f.idx] == nil {
		return nil, time.Time{}, false
	}
	return s.data[f.idx], s.mtime[f.idx], true
}

// nonNil keeps "empty" apart from "unavailable" (nil) in a snapshot.
func nonNil(b fetch.Bytes) []byte {
	if b == nil {
		return []byte{}
	}
	return []byte(b)
}
