package testenv_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"os"
	"slices"
	"testing"

	digest "github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/nodekit/nodekit/internal/testenv"
)

func TestBuildBusyboxImage(t *testing.T) {
	dir := t.TempDir()
	path, err := testenv.BuildBusyboxImage(dir)
	if errors.Is(err, testenv.ErrNotInstalled) && os.Geteuid() != 0 {
		t.Skip(err)
	}
	if err != nil {
		t.Fatal(err)
	}
	again, err := testenv.BuildBusyboxImage(dir)
	if err != nil || again != path {
		t.Fatalf("second build: %q, %v; want the cached %q", again, err, path)
	}
	entries, err := os.ReadDir(dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("cache dir holds %v (%v), want only the image tar", entries, err)
	}

	layout := readTar(t, mustRead(t, path))
	if got := string(layout["oci-layout"].data); got != `{"imageLayoutVersion":"1.0.0"}` {
		t.Errorf("oci-layout = %s", got)
	}
	blob := func(d ocispec.Descriptor) []byte {
		t.Helper()
		f, ok := layout["blobs/sha256/"+d.Digest.Encoded()]
		if !ok {
			t.Fatalf("blob %s missing", d.Digest)
		}
		if digest.FromBytes(f.data) != d.Digest || int64(len(f.data)) != d.Size {
			t.Fatalf("blob %s: content does not match its descriptor", d.Digest)
		}
		return f.data
	}
	var index ocispec.Index
	mustUnmarshal(t, layout["index.json"].data, &index)
	if len(index.Manifests) != 1 || index.Manifests[0].Annotations[ocispec.AnnotationRefName] != "latest" {
		t.Fatalf("index.json: want one manifest named latest, got %+v", index.Manifests)
	}
	var manifest ocispec.Manifest
	mustUnmarshal(t, blob(index.Manifests[0]), &manifest)
	var config ocispec.Image
	mustUnmarshal(t, blob(manifest.Config), &config)
	if want := []string{"/bin/sleep", "infinity"}; !slices.Equal(config.Config.Cmd, want) || len(config.Config.Entrypoint) != 0 {
		t.Errorf("config: Entrypoint %q Cmd %q, want Cmd %q only", config.Config.Entrypoint, config.Config.Cmd, want)
	}
	if len(manifest.Layers) != 1 || manifest.Layers[0].MediaType != ocispec.MediaTypeImageLayerGzip {
		t.Fatalf("manifest layers: %+v", manifest.Layers)
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob(manifest.Layers[0])))
	if err != nil {
		t.Fatal(err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	if len(config.RootFS.DiffIDs) != 1 || config.RootFS.DiffIDs[0] != digest.FromBytes(raw) {
		t.Errorf("diff IDs %v do not match the layer", config.RootFS.DiffIDs)
	}

	files := readTar(t, raw)
	if f := files["bin/busybox"]; f.mode != 0o755 || !bytes.Equal(f.data, mustRead(t, testenv.BusyboxBinary)) {
		t.Errorf("bin/busybox: mode %o, %d bytes; want 0755 and a copy of %s", f.mode, len(f.data), testenv.BusyboxBinary)
	}
	for _, applet := range []string{"sh", "sleep", "nc", "httpd", "dd"} {
		if f := files["bin/"+applet]; f.link != "busybox" {
			t.Errorf("bin/%s: link %q, want a symlink to busybox", applet, f.link)
		}
	}
	if f, ok := files["tmp/"]; !ok || f.mode != 0o1777 {
		t.Errorf("tmp/: mode %o, want 1777", f.mode)
	}
	if f := files["etc/passwd"]; !bytes.Contains(f.data, []byte("root:x:0:0:")) || !bytes.Contains(f.data, []byte("nobody:x:65534:65534:")) {
		t.Errorf("etc/passwd:\n%s", f.data)
	}
	if _, ok := files["etc/group"]; !ok {
		t.Error("etc/group missing")
	}
}

type tarFile struct {
	mode int64
	link string
	data []byte
}

func readTar(t *testing.T, b []byte) map[string]tarFile {
	t.Helper()
	files := map[string]tarFile{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return files
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		if h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: owner %d:%d, want 0:0", h.Name, h.Uid, h.Gid)
		}
		files[h.Name] = tarFile{mode: h.Mode, link: h.Linkname, data: data}
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustUnmarshal(t *testing.T, b []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%v in %s", err, b)
	}
}
