package fs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/auth"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fetch"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// Names the mount shows in /proc/mounts: the source column and the type
// (fuse.<Name>). DetachStale recognises the view by FSType.
const (
	FsName = "csi-secrets-store-provider-alibabacloud"
	Name   = "alibabacloud-secrets"
	FSType = "fuse." + Name
)

// Defaults of Config.
const (
	DefaultLookupTimeout = 5 * time.Second
	DefaultEntryTimeout  = time.Hour
	DefaultAttrTimeout   = time.Hour
)

// Config describes one mount of the view.
type Config struct {
	// Mountpoint is the directory to mount on (created when missing).
	Mountpoint string
	// Classes are shown as <Mountpoint>/<Class.Name>/; names must differ.
	Classes []*spc.Class
	// Fetcher reads through the node-wide cache. The caller runs
	// Fetcher.Cache().Run: its refresher keeps the view's pinned objects
	// fresh and publishes the events that invalidate the kernel's cache.
	Fetcher *fetch.Fetcher
	// Identity reads every object (the provider's own, Resolver.Base).
	Identity *auth.Identity
	// UID and GID own every file and directory; negative means the
	// calling process's. Files are 0400 and directories 0500, or, when
	// GID is not 0, 0440 and 0550: that group reads too (group 0 is never
	// given access, so root:root stays owner-only).
	UID, GID int
	// AllowOther lets users other than the mounting one in (they still
	// need the owner's uid or the group's gid, checked by the kernel with
	// default_permissions).
	AllowOther bool
	// NoOpen answers OPEN with ENOSYS, so the kernel stops sending OPEN,
	// RELEASE and FLUSH: warm reads never reach the daemon. The trade-off:
	// no per-open hook at all (see docs/fuse.md).
	NoOpen bool
	// LookupTimeout bounds the first fetch of an object by a lookup
	// (DefaultLookupTimeout). Past it the lookup fails with EIO; the fetch
	// goes on in the cache.
	LookupTimeout time.Duration
	// EntryTimeout is how long the kernel caches names, including unknown
	// ones (DefaultEntryTimeout); the tree never changes while mounted.
	EntryTimeout time.Duration
	// AttrTimeout is how long the kernel caches sizes and times
	// (DefaultAttrTimeout); changes are pushed with invalidations.
	AttrTimeout time.Duration
	// Logger receives mount, change and error lines (never secret bytes).
	Logger *slog.Logger
	// Observer, when set, is told about every operation the view answers
	// (metrics.Metrics implements it).
	Observer Observer
	// Takeover detaches a live view found on Mountpoint (another process
	// serving it) and mounts this one; its open files keep working until
	// closed. Without it Mount refuses a live view (*LiveViewError) and
	// detaches only a dead one (see DetachStale).
	Takeover bool
}

// Observer is told about every FUSE operation the view answers: op is
// lookup, getattr, open, read or readdir; err is a syscall.Errno, 0 on
// success. It must be cheap and must not block.
type Observer interface {
	FUSEOp(op string, err error)
}

// Server is one mounted view.
type Server struct {
	v    *view
	srv  *fuse.Server
	dir  string
	dev  uint64 // st_dev of the mount's root, to recognise it at unmount
	log  *slog.Logger
	done chan struct{}

	unsubscribe  func()
	stopNotifier chan struct{}
	notifierDone chan struct{}

	closeOnce sync.Once
	closeErr  error
}

// Mount detaches a stale mount of the view left at cfg.Mountpoint (a crashed
// process), or refuses a live one unless cfg.Takeover is set, then mounts
// the classes read-only and starts the notifier. Nothing is fetched until a
// file is looked up.
func Mount(cfg Config) (*Server, error) {
	if cfg.Mountpoint == "" {
		return nil, errors.New("fuse view: no mountpoint")
	}
	if cfg.Fetcher == nil || cfg.Identity == nil {
		return nil, errors.New("fuse view: a fetcher and an identity are required")
	}
	if len(cfg.Classes) == 0 {
		return nil, errors.New("fuse view: no class to show; pass at least one SecretProviderClass manifest")
	}
	if err := CheckClasses(cfg.Classes); err != nil {
		return nil, err
	}
	classes := append([]*spc.Class(nil), cfg.Classes...)
	sortClasses(classes)
	cfg.Classes = classes
	if cfg.LookupTimeout <= 0 {
		cfg.LookupTimeout = DefaultLookupTimeout
	}
	if cfg.EntryTimeout <= 0 {
		cfg.EntryTimeout = DefaultEntryTimeout
	}
	if cfg.AttrTimeout <= 0 {
		cfg.AttrTimeout = DefaultAttrTimeout
	}
	if cfg.UID < 0 {
		cfg.UID = os.Getuid()
	}
	if cfg.GID < 0 {
		cfg.GID = os.Getgid()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	log := cfg.Logger

	dir, err := cleanMountpoint(cfg.Mountpoint)
	if err != nil {
		return nil, err
	}
	cfg.Mountpoint = dir

	v, err := newView(cfg)
	if err != nil {
		return nil, err
	}

	d, err := DetachStale(dir, cfg.Takeover)
	if err != nil {
		return nil, err
	}
	if d.Stale > 0 {
		log.Warn("detached a stale FUSE view left on the mountpoint (its daemon is gone: a crashed process)", "mountpoint", dir, "mounts", d.Stale)
	}
	if d.Live > 0 {
		log.Warn("took over the live FUSE view on the mountpoint: its process no longer serves it, files open in it keep reading until closed", "mountpoint", dir, "mounts", d.Live)
	}
	// 0755: with --allow-other, the view's owner must be able to reach it.
	if err := os.MkdirAll(dir, 0o755); err != nil { //nolint:gosec // see above; the view's own root is 0500
		return nil, fmt.Errorf("fuse view: mountpoint: %w", err)
	}
	if st, err := os.Stat(dir); err != nil {
		return nil, fmt.Errorf("fuse view: mountpoint: %w", err)
	} else if !st.IsDir() {
		return nil, fmt.Errorf("fuse view: mountpoint %s is not a directory", dir)
	}

	entry := cfg.EntryTimeout
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: cfg.AllowOther,
			// default_permissions: the kernel checks mode and owner on
			// every access; without it any allowed user could read a
			// 0400 file.
			Options:            []string{"ro", "default_permissions"},
			DirectMountStrict:  true,
			DirectMountFlags:   syscall.MS_RDONLY | syscall.MS_NOSUID | syscall.MS_NODEV | syscall.MS_NOEXEC,
			FsName:             FsName,
			Name:               Name,
			DisableReadDirPlus: true, // ls must not look up (fetch) every file
			DisableXAttrs:      true,
			MaxReadAhead:       128 << 10,
		},
		// No mount-wide AttrTimeout: files and directories set
		// cfg.AttrTimeout themselves, and .status sets none (zero), so
		// its size is asked for on every stat and read.
		EntryTimeout:    &entry,
		NegativeTimeout: &entry,
		NullPermissions: true,
	}
	root := &dirNode{v: v, rec: v.root}
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		if ok, why := Usable(); !ok {
			return nil, fmt.Errorf("fuse view: mount %s: %w (%s)", dir, err, why)
		}
		return nil, fmt.Errorf("fuse view: mount %s: %w", dir, err)
	}
	s := &Server{
		v: v, srv: srv, dir: dir, log: log,
		done:         make(chan struct{}),
		stopNotifier: make(chan struct{}),
		notifierDone: make(chan struct{}),
	}
	go func() {
		srv.Wait()
		close(s.done)
	}()
	var st syscall.Stat_t
	if err := syscall.Stat(dir, &st); err == nil {
		s.dev = st.Dev
	}
	s.unsubscribe = v.cache.Subscribe(v.onEvent)
	go v.notifier(s.stopNotifier, s.notifierDone)

	if cfg.UID != os.Getuid() && !cfg.AllowOther {
		log.Warn("the view's owner is not the mounting user, and without --allow-other the kernel lets only the mounting user in", "uid", cfg.UID)
	}
	if cfg.GID != 0 && !cfg.AllowOther {
		log.Warn("the view's files are readable by its group, but without --allow-other the kernel lets only the mounting user in", "gid", cfg.GID)
	}
	mode := "keep-cache"
	if cfg.NoOpen {
		mode = "no-open"
	}
	names := make([]string, len(classes))
	for i, c := range classes {
		names[i] = c.Name
	}
	log.Info("FUSE view mounted", "mountpoint", dir, "classes", names, "mode", mode,
		"uid", cfg.UID, "gid", cfg.GID, "fileMode", fmt.Sprintf("%04o", v.fileMode), "dirMode", fmt.Sprintf("%04o", v.dirMode),
		"allowOther", cfg.AllowOther, "identity", cfg.Identity.String())
	return s, nil
}

// Mountpoint is the absolute directory the view is mounted on.
func (s *Server) Mountpoint() string { return s.dir }

// Paths lists every file of the view relative to the mountpoint, with each
// class's .status (nothing is fetched).
func (s *Server) Paths() []string { return s.v.paths() }

// Status reports the state of every class (what the .status files show).
func (s *Server) Status() []ClassStatus {
	out := make([]ClassStatus, len(s.v.classes))
	for i, cv := range s.v.classes {
		out[i] = s.v.status(cv)
	}
	return out
}

// Check reports whether the view is still served on its mountpoint: the
// kernel connection is up and the top mount there is this view (not
// detached by a successor, not covered by another mount). It reads
// /proc/self/mountinfo and never touches the mount (liveness probes).
func (s *Server) Check() error {
	select {
	case <-s.done:
		return errors.New("the FUSE connection has ended (unmounted)")
	default:
	}
	ms, err := entriesAt(s.dir)
	if err != nil {
		return fmt.Errorf("read /proc/self/mountinfo: %w", err)
	}
	if len(ms) == 0 {
		return fmt.Errorf("%s is not mounted", s.dir)
	}
	top := ms[len(ms)-1]
	if top.fsType != FSType || (s.dev != 0 && top.dev != devString(s.dev)) {
		return fmt.Errorf("%s now shows another mount (%s %s), not this view", s.dir, top.fsType, top.dev)
	}
	return nil
}

// Done is closed when the kernel connection ends: after Close, or when
// someone else unmounted the view.
func (s *Server) Done() <-chan struct{} { return s.done }

// Serve blocks until ctx ends (SIGTERM) or the view is unmounted from
// outside, then closes it with Close(grace).
func (s *Server) Serve(ctx context.Context, grace time.Duration) error {
	select {
	case <-ctx.Done():
	case <-s.done:
		s.log.Warn("the FUSE view was unmounted from outside", "mountpoint", s.dir)
	}
	return s.Close(grace)
}

// Close unmounts the view: a plain unmount, or, when files are still open,
// a lazy one (MNT_DETACH) that empties the mountpoint at once while open
// files keep reading until they are closed or grace passes. After that, an
// open file keeps what the kernel cached; other reads fail with ENOTCONN.
// A mount on the same directory that is not this one (a successor took
// over) is left alone. Close is idempotent.
func (s *Server) Close(grace time.Duration) error {
	s.closeOnce.Do(func() {
		s.closeErr = s.unmount()
		if grace > 0 {
			t := time.NewTimer(grace)
			select {
			case <-s.done:
			case <-t.C:
				s.log.Warn("files of the detached FUSE view are still open; after this process exits they keep the bytes they already read (the kernel's page cache, while it keeps them; no rotation reaches them), and a read the cache cannot answer fails with ENOTCONN", "grace", grace)
			}
			t.Stop()
		}
		s.unsubscribe()
		close(s.stopNotifier)
		<-s.notifierDone
		s.v.unpinAll()
	})
	return s.closeErr
}

func (s *Server) unmount() error {
	select {
	case <-s.done:
		return nil // already gone
	default:
	}
	if !s.onMountpoint() {
		// Our mount is no longer on the directory (detached by a
		// successor); the connection ends when its last file closes.
		s.log.Info("the FUSE view is no longer on the mountpoint; not unmounting", "mountpoint", s.dir)
		return nil
	}
	err := s.srv.Unmount() // plain unmount, retried briefly
	if err == nil {
		s.log.Info("FUSE view unmounted", "mountpoint", s.dir)
		return nil
	}
	if errors.Is(err, syscall.EINVAL) {
		return nil // not mounted any more
	}
	if !errors.Is(err, syscall.EBUSY) {
		return fmt.Errorf("fuse view: unmount %s: %w", s.dir, err)
	}
	if err := syscall.Unmount(s.dir, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) {
		return fmt.Errorf("fuse view: lazy unmount %s: %w", s.dir, err)
	}
	s.log.Info("FUSE view detached lazily: files are still open", "mountpoint", s.dir)
	return nil
}

// onMountpoint reports whether the directory still shows this mount.
func (s *Server) onMountpoint() bool {
	var st syscall.Stat_t
	return syscall.Stat(s.dir, &st) == nil && st.Dev == s.dev
}

// cleanMountpoint makes dir absolute and resolves symlinks in its parent
// (not in dir itself: a dead mount there answers ENOTCONN).
func cleanMountpoint(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", fmt.Errorf("fuse view: mountpoint %s: %w", dir, err)
	}
	parent, base := filepath.Dir(abs), filepath.Base(abs)
	if real, err := filepath.EvalSymlinks(parent); err == nil {
		parent = real
	}
	if base == "/" || base == "." {
		return "", fmt.Errorf("fuse view: refusing to mount on %s", abs)
	}
	return filepath.Join(parent, base), nil
}
