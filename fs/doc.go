// Package fs is the node's FUSE view of SecretProviderClasses: a read-only
// file system that shows each class as a directory with exactly the files a
// CSI volume of that class gets, served lazily from the same node-wide cache
// as the provider socket.
//
// The tree comes from the class manifests, never from upstream. A file's
// first lookup fetches its object through the cache under a deadline, so
// the size the kernel gets is exact; Getattr and Read serve an immutable
// snapshot and never touch the network. The view pins every object it has
// shown, so the cache's refresher keeps it fresh even though kernel-cached
// reads never reach the daemon, and one notifier goroutine turns the cache's
// change events into kernel invalidations (NotifyContent) outside any
// handler and any lock. A failed refresh keeps the last good value; a file
// answers EIO only when no value was ever fetched. Each class has a .status
// file (JSON: versions, times, errors; never secret bytes).
//
// Safety: mounted ro,nosuid,nodev,noexec with default_permissions, files
// 0400 and directories 0500 owned by one uid/gid (0440 and 0550 when the gid
// is not 0: that group reads too), allow_other opt-in, direct
// mount(2) (no fusermount). A stale mount left by a crash is detached at
// start, and Close unmounts lazily when files are still open.
//
// See docs/fuse.md for the operator's view and docs/performance.md for the
// measured cost against tmpfs.
package fs
