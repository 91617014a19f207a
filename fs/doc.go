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
// handler and any lock. A failed refresh keeps the last good value through
// outages; a file answers EIO when no value was ever fetched, and again as
// soon as upstream refuses the value for good (deleted, access revoked,
// credential rejected), like a CSI Mount. Each class has a .status file
// (JSON: versions, times, errors; never secret bytes).
//
// Safety: mounted ro,nosuid,nodev,noexec with default_permissions, files
// 0400 and directories 0500 owned by one uid/gid (0440 and 0550 when the gid
// is not 0: that group reads too), allow_other opt-in, direct
// mount(2) (no fusermount). A stale mount left by a crash is detached at
// start, and Close unmounts lazily when files are still open.
//
// # Structure
//
// Two trees stand side by side. The records (view.go) are built once by
// newView from the classes and never change shape while mounted; the inodes
// (nodes.go) are what go-fuse and the kernel hold, and each points at its
// record. Inode numbers are the records' and fixed at mount: the root is 1,
// then each class in name order gets its directory, its .status, then the
// directories and files of its objects in object order. Drawn for a class
// "app" with objects demo-db (jmesPath: db-username, db-password) and
// demo-tls-key (objectAlias tls/key.der):
//
//	inodes (go-fuse)                records (view.go)
//
//	dirNode /      persistent ----> dirRec /
//	 dirNode app   persistent ----> . dirRec app ---- class ---> classView app
//	  statusNode .status  ------------------------------------->   statusMemo
//	  fileNode demo-db     -------> . . fileRec idx 0 --+          objs: the two objViews
//	  fileNode db-username -------> . . fileRec idx 1 --+-> objView objects[0] "demo-db"
//	  fileNode db-password -------> . . fileRec idx 2 --+
//	  dirNode tls  persistent ----> . . dirRec tls
//	   fileNode key.der    -------> . . . fileRec idx 0 --> objView objects[1] "demo-tls-key"
//
//	objView     o: the class's fetch.Object; files: its fileRecs
//	            snap --> snapshot{entry, data[idx], mtime[idx], derr, gone}, immutable, replaced whole
//	            key, pinned, unpin: its cache key and pin; lastErr: its last lookup failure
//	view.byKey  fetch.Key --> []*objView: the objects a cache key feeds
//	view.queue  *objView --> newest fetch.Entry: events waiting for the notifier
//
// Directories are persistent inodes made at mount (dirNode.OnAdd stores each
// one in its dirRec.inode, so the notifier can find a live file with
// GetChild). Files and .status are ordinary inodes made by Lookup that the
// kernel may forget; nothing in the records points at them. An object is
// one objView however many files it yields (the whole value, or one per
// jmesPath entry): one fetch and one snapshot serve them all, fileRec.idx
// picking the file's bytes. The records stay beside the inodes because the
// names must answer Lookup and Readdir without any inode or fetch, and
// because an object's cache key (one with crossAccountRoleArn is known only
// after its fetch) and its files' bytes belong to the object, not to any
// one file's inode.
//
// Who writes what:
//
//   - newView (Mount): every dirRec, fileRec, classView and objView, and the
//     inode numbers. Read without locks afterwards.
//   - dirNode.OnAdd (mount): dirRec.inode.
//   - A file's first Lookup, view.ensure: fetches the object through the
//     cache under LookupTimeout; track pins the key (fetch.Cache.Pin, so
//     the cache's refresher keeps it fresh though kernel-cached reads never
//     reach the daemon), sets objView.key and adds the object to
//     view.byKey; apply publishes the first snapshot. A failure sets
//     objView.lastErr and the file answers EIO. Later lookups only Peek the
//     cache and apply a newer entry if there is one.
//   - The cache's refresher (fetch.Cache.Run) refetches the pinned key and,
//     when the version or the bytes changed, or when upstream refused the
//     value for good and the cache dropped it, calls view.onEvent on its own
//     goroutine: onEvent only looks the key up in view.byKey and pushes the
//     entry (or the refusal) onto view.queue (newest wins per object; never
//     blocks).
//   - The notifier goroutine (notify.go) takes the queue, calls apply (a new
//     snapshot; each file's mtime moves only when its own bytes change), and
//     then, holding no lock and outside any handler, invalidates the
//     kernel's pages and attributes of each of the object's files that the
//     kernel holds (NotifyContent). A first fetch seen as an event is not
//     invalidated: the lookup reported those bytes.
//   - Getattr and Read load objView.snap and nothing else; .status renders
//     the snapshots, objView.lastErr and fetch.Cache.Status into its
//     statusMemo.
//   - Close (mount.go): unmounts, unsubscribes from the cache, stops the
//     notifier, then unpinAll releases every pin.
//
// An event without a new value (upstream refused it for good: deleted,
// access revoked or credential rejected; the cache drops the value at once,
// while outages keep it) is routed like a change: the notifier publishes a
// snapshot without bytes whose gone field holds the refusal (objView.revoke)
// and invalidates the kernel's pages and attributes of the object's files,
// so stat, open-then-read and a fresh lookup all answer EIO (what a first
// lookup answers when no value can be fetched; never ENOENT, which the
// kernel would remember for EntryTimeout as a negative entry), and .status
// says why in the object's "revoked" field. The pin stays, so the refresher
// keeps asking; when upstream serves a value again (re-granted, re-created)
// the event carries it, apply replaces the gone snapshot, and the files
// serve the new bytes, invalidated like any change.
//
// See docs/fuse.md for the operator's view and docs/performance.md for the
// measured cost against tmpfs.
package fs
