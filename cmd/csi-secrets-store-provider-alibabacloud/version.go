package main

import (
	"fmt"
	"io"
	"runtime"
)

func printVersion(w io.Writer) {
	fmt.Fprintf(w, "csi-secrets-store-provider-alibabacloud\n  version: %s\n  commit:  %s\n  go:      %s\n  platform: %s/%s\n",
		version, commit, runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
