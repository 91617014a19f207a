package cluster

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestImageArchitectures reads every image tarball the node imports (and
// the arm64 provider image, built for ACK's arm64 nodes and never run here)
// and checks the architecture and OS in its config, the name it will have
// in containerd, and the provider's entrypoint.
func TestImageArchitectures(t *testing.T) {
	dir, err := filepath.Abs("../../.tools/cluster/images")
	if err != nil {
		t.Fatal(err)
	}
	env, err := readImagesEnv(filepath.Join(dir, "images.env"))
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	want := map[string]struct{ key, arch string }{
		"provider-amd64.tar": {"PROVIDER_IMAGE_AMD64", "amd64"},
		"provider-arm64.tar": {"PROVIDER_IMAGE_ARM64", "arm64"},
		"driver.tar":         {"DRIVER_IMAGE", "amd64"},
		"registrar.tar":      {"REGISTRAR_IMAGE", "amd64"},
		"livenessprobe.tar":  {"LIVENESSPROBE_IMAGE", "amd64"},
		"pause.tar":          {"PAUSE_IMAGE", "amd64"},
		"app.tar":            {"APP_IMAGE", "amd64"},
	}
	for file, w := range want {
		t.Run(file, func(t *testing.T) {
			cfg, tags, err := imageConfig(filepath.Join(dir, file))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Architecture != w.arch || cfg.OS != "linux" {
				t.Errorf("%s: %s/%s, want linux/%s", file, cfg.OS, cfg.Architecture, w.arch)
			}
			if ref := env[w.key]; len(tags) != 1 || tags[0] != ref {
				t.Errorf("%s is tagged %v, want [%s] (%s in images.env)", file, tags, ref, w.key)
			}
			if strings.HasPrefix(file, "provider-") {
				if got := strings.Join(cfg.Config.Entrypoint, " "); got != "/csi-secrets-store-provider-alibabacloud" {
					t.Errorf("%s: entrypoint %q", file, got)
				}
				if got := strings.Join(cfg.Config.Cmd, " "); got != "serve" {
					t.Errorf("%s: cmd %q, want serve", file, got)
				}
			}
		})
	}
}

type imageCfg struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string `json:"Entrypoint"`
		Cmd        []string `json:"Cmd"`
	} `json:"config"`
}

// imageConfig reads a docker-archive: manifest.json names the config file
// and the repo tags.
func imageConfig(path string) (imageCfg, []string, error) {
	files := map[string][]byte{}
	f, err := os.Open(path)
	if err != nil {
		return imageCfg{}, nil, err
	}
	defer f.Close()
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return imageCfg{}, nil, err
		}
		if strings.HasSuffix(h.Name, ".json") || !strings.Contains(h.Name, "/") {
			b, err := io.ReadAll(io.LimitReader(tr, 1<<20))
			if err != nil {
				return imageCfg{}, nil, err
			}
			files[strings.TrimPrefix(h.Name, "./")] = b
		}
	}
	var manifest []struct {
		Config   string
		RepoTags []string
	}
	if err := json.Unmarshal(files["manifest.json"], &manifest); err != nil || len(manifest) != 1 {
		return imageCfg{}, nil, fmt.Errorf("%s: manifest.json: %v (%d images)", path, err, len(manifest))
	}
	var cfg imageCfg
	if err := json.Unmarshal(files[manifest[0].Config], &cfg); err != nil {
		return imageCfg{}, nil, fmt.Errorf("%s: config %s: %w", path, manifest[0].Config, err)
	}
	return cfg, manifest[0].RepoTags, nil
}
