// Package mlog is a minimal stand-in for monis.app/mlog: only what
// sigs.k8s.io/secrets-store-csi-driver/pkg/secrets-store uses.
package mlog

import (
	"fmt"
	"os"
)

// Fatal logs err with its key/value pairs and exits, as the real mlog.Fatal
// does.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(1)
}
