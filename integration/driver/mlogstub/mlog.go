// Package mlog is a minimal stand-in for monis.app/mlog, which the Go module
// proxy this project uses does not serve. It has what
// sigs.k8s.io/secrets-store-csi-driver v1.6.0 calls: Fatal from
// pkg/secrets-store, and Setup, FormatText/FormatJSON,
// ValidateAndSetKlogLevelAndFormatGlobally and Error from
// cmd/secrets-store-csi-driver's main. It has no dependencies: klog, which the
// driver sets up itself (klog.InitFlags), keeps writing the driver's logs.
package mlog

import (
	"context"
	"fmt"
	"os"
)

// Fatal logs err with its key/value pairs and exits, as the real mlog.Fatal
// does.
func Fatal(err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"fatal:", err}, keysAndValues...)...)
	os.Exit(1)
}

// Error logs msg and err with its key/value pairs to stderr.
func Error(msg string, err error, keysAndValues ...any) {
	fmt.Fprintln(os.Stderr, append([]any{"error:", msg, err}, keysAndValues...)...)
}

// LogFormat is the output format the real mlog gives klog.
type LogFormat string

// The formats the driver's --log-format-json flag chooses between.
const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

// Setup returns the function main defers; the real one flushes its logger.
// klog here writes straight to stderr, so there is nothing to flush.
func Setup() func() { return func() {} }

// ValidateAndSetKlogLevelAndFormatGlobally rejects a negative level and an
// unknown format. It changes nothing else: klog already
// has the level from its -v flag, and JSON output is not reproduced (klog's
// text format is used either way). The level's type is generic over
// klog.Level's underlying type so this module needs no klog dependency.
func ValidateAndSetKlogLevelAndFormatGlobally[L ~int32](_ context.Context, level L, format LogFormat) error {
	if level < 0 {
		return fmt.Errorf("invalid log level %d: must be at least 0", level)
	}
	if format != FormatText && format != FormatJSON {
		return fmt.Errorf("invalid log format %q", format)
	}
	return nil
}
