package fs

import (
	"context"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Modes of the view: read-only for the owner, nothing for anyone else. The
// kernel enforces them (default_permissions). With a group other than 0
// (Config.GID), the group reads too: groupFileMode and groupDirMode.
const (
	fileMode      = 0o400
	dirMode       = 0o500
	groupFileMode = 0o440
	groupDirMode  = 0o550
)

// dirNode is a directory of the static tree: the root, a class, or a
// directory inside a class (pathTranslation: "False"). Directories are
// persistent inodes built at mount; files are looked up on demand.
type dirNode struct {
	gofs.Inode
	v   *view
	rec *dirRec
}

var (
	_ gofs.NodeOnAdder   = (*dirNode)(nil)
	_ gofs.NodeLookuper  = (*dirNode)(nil)
	_ gofs.NodeReaddirer = (*dirNode)(nil)
	_ gofs.NodeGetattrer = (*dirNode)(nil)
	_ gofs.NodeStatfser  = (*dirNode)(nil)
)

// OnAdd builds the persistent directory inodes below the root, so the
// notifier can find live file inodes with GetChild.
func (n *dirNode) OnAdd(ctx context.Context) {
	n.rec.inode = n.EmbeddedInode()
	for name, sub := range n.rec.dirs {
		ch := n.NewPersistentInode(ctx, &dirNode{v: n.v, rec: sub}, gofs.StableAttr{Mode: fuse.S_IFDIR, Ino: sub.ino})
		n.AddChild(name, ch, false)
	}
}

func (n *dirNode) fillDir(d *dirRec, a *fuse.Attr) {
	a.Mode = fuse.S_IFDIR | n.v.dirMode
	a.Ino = d.ino
	a.Nlink = d.nlink
	a.Uid, a.Gid = n.v.uid, n.v.gid
	a.SetTimes(&n.v.mountedAt, &n.v.mountedAt, &n.v.mountedAt)
}

func (n *dirNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	n.fillDir(n.rec, &out.Attr)
	out.SetTimeout(n.v.cfg.AttrTimeout)
	n.v.observe("getattr", 0)
	return 0
}

// Lookup answers from the class: a name it does not list is ENOENT without
// any upstream call. A file's first lookup fetches its object through the
// cache (under the lookup deadline) so the size it reports is exact.
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ch, errno := n.lookup(ctx, name, out)
	n.v.observe("lookup", errno)
	return ch, errno
}

func (n *dirNode) lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if sub, ok := n.rec.dirs[name]; ok {
		n.fillDir(sub, &out.Attr)
		out.SetAttrTimeout(n.v.cfg.AttrTimeout)
		return sub.inode, 0
	}
	if name == StatusFile && n.rec.class != nil {
		cv := n.rec.class
		body, mtime := cv.status.render(n.v, cv)
		fillStatus(n.v, cv, body, mtime, &out.Attr) // attributes not cached
		return n.NewInode(ctx, &statusNode{v: n.v, cls: cv}, gofs.StableAttr{Mode: fuse.S_IFREG, Ino: cv.ino}), 0
	}
	f, ok := n.rec.files[name]
	if !ok {
		return nil, syscall.ENOENT
	}
	n.v.lookups.Add(1)
	if _, errno := n.v.ensure(ctx, f.obj); errno != 0 {
		return nil, errno
	}
	data, mtime, ok := f.fileData()
	if !ok {
		return nil, syscall.EIO // a jmesPath file never derived
	}
	fillFile(n.v, f, data, mtime, &out.Attr)
	out.SetAttrTimeout(n.v.cfg.AttrTimeout)
	return n.NewInode(ctx, &fileNode{v: n.v, f: f}, gofs.StableAttr{Mode: fuse.S_IFREG, Ino: f.ino}), 0
}

// Readdir lists the class's names; it never fetches (READDIRPLUS is off,
// so a plain ls does not look every file up either).
func (n *dirNode) Readdir(_ context.Context) (gofs.DirStream, syscall.Errno) {
	out := make([]fuse.DirEntry, 0, len(n.rec.names)+2)
	out = append(out,
		fuse.DirEntry{Name: ".", Mode: fuse.S_IFDIR, Ino: n.rec.ino},
		fuse.DirEntry{Name: "..", Mode: fuse.S_IFDIR, Ino: n.rec.up})
	for _, name := range n.rec.names {
		switch {
		case n.rec.dirs[name] != nil:
			out = append(out, fuse.DirEntry{Name: name, Mode: fuse.S_IFDIR, Ino: n.rec.dirs[name].ino})
		case n.rec.files[name] != nil:
			out = append(out, fuse.DirEntry{Name: name, Mode: fuse.S_IFREG, Ino: n.rec.files[name].ino})
		case name == StatusFile && n.rec.class != nil:
			out = append(out, fuse.DirEntry{Name: name, Mode: fuse.S_IFREG, Ino: n.rec.class.ino})
		}
	}
	n.v.observe("readdir", 0)
	return gofs.NewListDirStream(out), 0
}

func (n *dirNode) Statfs(_ context.Context, out *fuse.StatfsOut) syscall.Errno {
	*out = fuse.StatfsOut{Bsize: 4096, Frsize: 4096, NameLen: 255}
	return 0
}

func fillFile(v *view, f *fileRec, data []byte, mtime time.Time, a *fuse.Attr) {
	a.Mode = fuse.S_IFREG | v.fileMode
	a.Ino = f.ino
	a.Nlink = 1
	a.Size = uint64(len(data))
	a.Uid, a.Gid = v.uid, v.gid
	a.SetTimes(&mtime, &mtime, &mtime)
}

// fileNode is one secret file. Getattr and Read serve the object's current
// snapshot and never fetch; rotation replaces the snapshot and the notifier
// invalidates the kernel's pages and attributes.
type fileNode struct {
	gofs.Inode
	v *view
	f *fileRec
}

var (
	_ gofs.NodeGetattrer = (*fileNode)(nil)
	_ gofs.NodeOpener    = (*fileNode)(nil)
	_ gofs.NodeReader    = (*fileNode)(nil)
	_ gofs.NodeFlusher   = (*fileNode)(nil)
)

func (n *fileNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	data, mtime, ok := n.f.fileData()
	if !ok {
		n.v.observe("getattr", syscall.EIO)
		return syscall.EIO
	}
	fillFile(n.v, n.f, data, mtime, &out.Attr)
	out.SetTimeout(n.v.cfg.AttrTimeout)
	n.v.observe("getattr", 0)
	return 0
}

// Open keeps the page cache across opens and skips FLUSH on close. In
// no-open mode it answers ENOSYS, after which the kernel stops sending
// OPEN (and RELEASE) on this connection: warm reads never reach us.
func (n *fileNode) Open(_ context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		n.v.observe("open", syscall.EROFS)
		return nil, 0, syscall.EROFS
	}
	n.v.opens.Add(1)
	n.v.observe("open", 0) // in no-open mode, ENOSYS is the success
	if n.v.cfg.NoOpen {
		return nil, 0, syscall.ENOSYS
	}
	return nil, fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_NOFLUSH, 0
}

func (n *fileNode) Read(_ context.Context, _ gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.v.reads.Add(1)
	data, _, ok := n.f.fileData()
	if !ok {
		n.v.observe("read", syscall.EIO)
		return nil, syscall.EIO
	}
	n.v.observe("read", 0)
	return fuse.ReadResultData(slice(data, off, len(dest))), 0
}

// Flush answers ENOSYS so the kernel stops sending FLUSH on this
// connection (nothing is ever written).
func (n *fileNode) Flush(context.Context, gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }

func slice(data []byte, off int64, n int) []byte {
	if off < 0 || off >= int64(len(data)) {
		return nil
	}
	end := off + int64(n)
	if end > int64(len(data)) {
		end = int64(len(data))
	}
	return data[off:end]
}

// statusNode is a class's .status: JSON rendered from the cache's and the
// view's state (versions, times, errors; never secret bytes). Its
// attributes are never cached (the mount has no default attribute timeout;
// every other node sets its own), so stat shows the current size. In keep-cache mode each open renders it afresh and reads it
// with DIRECT_IO; in no-open mode a read serves the rendering of the
// attribute request the kernel makes just before it, so size and content
// agree.
type statusNode struct {
	gofs.Inode
	v   *view
	cls *classView
}

var (
	_ gofs.NodeGetattrer = (*statusNode)(nil)
	_ gofs.NodeOpener    = (*statusNode)(nil)
	_ gofs.NodeReader    = (*statusNode)(nil)
	_ gofs.NodeFlusher   = (*statusNode)(nil)
)

func fillStatus(v *view, cv *classView, body []byte, mtime time.Time, a *fuse.Attr) {
	a.Mode = fuse.S_IFREG | v.fileMode
	a.Ino = cv.ino
	a.Nlink = 1
	a.Size = uint64(len(body))
	a.Uid, a.Gid = v.uid, v.gid
	a.SetTimes(&mtime, &mtime, &mtime)
}

func (n *statusNode) Getattr(_ context.Context, _ gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	body, mtime := n.cls.status.render(n.v, n.cls)
	fillStatus(n.v, n.cls, body, mtime, &out.Attr) // attributes not cached
	n.v.observe("getattr", 0)
	return 0
}

func (n *statusNode) Open(_ context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	if flags&syscall.O_ACCMODE != syscall.O_RDONLY || flags&syscall.O_TRUNC != 0 {
		return nil, 0, syscall.EROFS
	}
	if n.v.cfg.NoOpen {
		return nil, 0, syscall.ENOSYS
	}
	// Every open reads a fresh rendering, held by the handle so that one
	// open reads consistent bytes; DIRECT_IO bypasses the page cache, so
	// the size the kernel holds does not matter.
	body, _ := n.cls.status.render(n.v, n.cls)
	n.v.observe("open", 0)
	return &statusHandle{body: body}, fuse.FOPEN_DIRECT_IO | fuse.FOPEN_NOFLUSH, 0
}

// statusHandle is one open .status (keep-cache mode).
type statusHandle struct{ body []byte }

func (n *statusNode) Read(_ context.Context, fh gofs.FileHandle, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n.v.observe("read", 0)
	if h, ok := fh.(*statusHandle); ok {
		return fuse.ReadResultData(slice(h.body, off, len(dest))), 0
	}
	// No-open mode: serve the rendering of the attribute request the
	// kernel made just before this read (the attributes expire at once).
	body := n.cls.status.last(n.v, n.cls)
	return fuse.ReadResultData(slice(body, off, len(dest))), 0
}

func (n *statusNode) Flush(context.Context, gofs.FileHandle) syscall.Errno { return syscall.ENOSYS }
