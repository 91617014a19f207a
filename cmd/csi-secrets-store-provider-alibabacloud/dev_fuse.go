package main

import (
	"context"
	"log/slog"
)

// startDevFUSE mounts the FUSE view of the demo class when /dev/fuse is
// usable and returns a line for the "Try next" list.
func startDevFUSE(_ context.Context, _ *options, _ *slog.Logger, _ *stack, _, _ string, disabled bool) string {
	if disabled {
		return ""
	}
	return "# FUSE view: not available in this build"
}
