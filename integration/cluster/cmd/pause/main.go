// Command pause is the e2e cluster's pod sandbox binary (image
// localhost/pause:e2e, containerd's sandbox_image), standing in for
// registry.k8s.io/pause, which cannot be pulled here. Like the C original it
// runs as the sandbox's pid 1: it blocks until SIGTERM or SIGINT, then exits
// 0, and it reaps any zombie child re-parented to it. Build it static
// (CGO_ENABLED=0): the image has nothing else in it.
package main

import (
	"fmt"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		fmt.Println("pause (e2e stand-in)")
		return
	}
	sigs := make(chan os.Signal, 8)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			fmt.Fprintf(os.Stderr, "pause: %v: exiting\n", sig)
			return
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var ws syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
