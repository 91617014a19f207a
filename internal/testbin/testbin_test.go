package testbin

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestRootIsTheRootModule(t *testing.T) {
	root, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, Cmd)); err != nil {
		t.Fatalf("no %s under %s: %v", Cmd, root, err)
	}
}

// Concurrent callers with the same options share one build; Cleanup
// removes it.
func TestProviderBuildsOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the provider")
	}
	var wg sync.WaitGroup
	paths := make([]string, 4)
	for i := range paths {
		wg.Go(func() {
			p, err := Provider(Options{})
			if err != nil {
				t.Error(err)
			}
			paths[i] = p
		})
	}
	wg.Wait()
	for _, p := range paths[1:] {
		if p != paths[0] {
			t.Fatalf("two builds for the same options: %q", paths)
		}
	}
	if fi, err := os.Stat(paths[0]); err != nil || fi.Mode()&0o111 == 0 {
		t.Fatalf("the binary: %v %v", fi, err)
	}
	Cleanup()
	if _, err := os.Stat(paths[0]); !os.IsNotExist(err) {
		t.Fatalf("after Cleanup: %v", err)
	}
}
