package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/fs"
	"github.com/alibabacloud-go/csi-secrets-store-provider-alibabacloud/spc"
)

// startDevFUSE mounts the FUSE view of the demo classes when /dev/fuse is
// usable. It returns the lines for the "Try next" list, and a stop func
// that unmounts (a no-op when nothing was mounted).
func startDevFUSE(ctx context.Context, log *slog.Logger, st *stack, classes []*spc.Class, work string, disabled bool) (string, func()) {
	noop := func() {}
	if disabled {
		return "", noop
	}
	if ok, why := fs.Usable(); !ok {
		return "# FUSE view: not mounted (" + why + "); the CSI side works without it", noop
	}
	v := &viewFlags{
		mountpoint: filepath.Join(work, "fuse"), uid: os.Getuid(), gid: os.Getgid(),
		lookupTimeout: fs.DefaultLookupTimeout, kernelTimeout: fs.DefaultAttrTimeout,
	}
	srv, err := mountView(ctx, st, log, classes, v, nil)
	if err != nil {
		return "# FUSE view: not mounted: " + err.Error(), noop
	}
	dir := filepath.Join(srv.Mountpoint(), classes[0].Name)
	note := fmt.Sprintf("# the same secrets on the node, served lazily from the same cache (FUSE):\n  ls -la %s && cat %s/db-username; echo; cat %s/.status", dir, dir, dir)
	return note, func() { _ = srv.Close(2 * time.Second) }
}
