package testenv

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// BusyboxBinary is the static busybox the test image is built from (Debian's
// busybox-static package).
const BusyboxBinary = "/bin/busybox"

// BusyboxImage is the name the test image is imported under. It is also the
// sandbox (pause) image of every instance, so nothing is ever pulled.
const BusyboxImage = "localhost/busybox:latest"

// imageFormat changes whenever the layout written by BuildBusyboxImage
// changes, so that cached tars of an older layout are not reused.
const imageFormat = "1"

// epoch is the modification time of every file in the image: fixed, so the
// same busybox binary always gives the same digests.
var epoch = time.Unix(0, 0).UTC()

// BuildBusyboxImage writes a tar of an OCI image layout holding BusyboxBinary
// into dir and returns its path. The image has one layer: /bin/busybox with a
// symlink in /bin for each applet, /tmp (1777), /root, and an /etc/passwd and
// /etc/group with root (0) and nobody (65534). Its default command is
// ["/bin/sleep", "infinity"] (as Cmd, with no Entrypoint, so a container's
// args replace it). The layout's only manifest is tagged "latest".
//
// The tar is named after the hash of the busybox binary and is reused when it
// already exists, so calling this again is cheap. The file appears atomically;
// concurrent callers (even in other processes) are safe.
func BuildBusyboxImage(dir string) (string, error) {
	bin, err := os.ReadFile(BusyboxBinary)
	if err != nil {
		return "", fmt.Errorf("%w: read %s (Debian package busybox-static): %v", ErrNotInstalled, BusyboxBinary, err)
	}
	sum := sha256.Sum256(append([]byte("nodekit-busybox-image-v"+imageFormat+"\n"), bin...))
	path := filepath.Join(dir, "busybox-"+hex.EncodeToString(sum[:8])+".tar")
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	applets, err := busyboxApplets()
	if err != nil {
		return "", err
	}
	layout, err := busyboxLayout(bin, applets)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	f, err := os.CreateTemp(dir, ".busybox-*.tar")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name()) // a no-op after the rename
	if _, err := f.Write(layout); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return "", err
	}
	if err := os.Rename(f.Name(), path); err != nil {
		return "", err
	}
	return path, nil
}

// busyboxApplets lists the applets of BusyboxBinary.
func busyboxApplets() ([]string, error) {
	out, err := exec.Command(BusyboxBinary, "--list").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list: %w", BusyboxBinary, err)
	}
	var applets []string
	for _, a := range strings.Fields(string(out)) {
		if a != "busybox" && !strings.Contains(a, "/") {
			applets = append(applets, a)
		}
	}
	sort.Strings(applets)
	if len(applets) == 0 {
		return nil, fmt.Errorf("%s --list printed no applets", BusyboxBinary)
	}
	return applets, nil
}

// busyboxLayout returns the tar of the image layout.
func busyboxLayout(bin []byte, applets []string) ([]byte, error) {
	layer, diffID, err := busyboxLayer(bin, applets)
	if err != nil {
		return nil, err
	}
	config := ocispec.Image{
		Created:  &epoch,
		Platform: ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config: ocispec.ImageConfig{
			Env:        []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Cmd:        []string{"/bin/sleep", "infinity"},
			WorkingDir: "/",
		},
		RootFS: ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{diffID}},
	}
	configJSON, err := json.Marshal(config)
	if err != nil {
		return nil, err
	}
	configDesc := descriptor(ocispec.MediaTypeImageConfig, configJSON)
	manifest := ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    []ocispec.Descriptor{descriptor(ocispec.MediaTypeImageLayerGzip, layer)},
	}
	manifestJSON, err := json.Marshal(manifest)
	if err != nil {
		return nil, err
	}
	manifestDesc := descriptor(ocispec.MediaTypeImageManifest, manifestJSON)
	manifestDesc.Platform = &config.Platform
	manifestDesc.Annotations = map[string]string{ocispec.AnnotationRefName: "latest"}
	index := ocispec.Index{
		Versioned: specs.Versioned{SchemaVersion: 2},
		MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifestDesc},
	}
	indexJSON, err := json.Marshal(index)
	if err != nil {
		return nil, err
	}
	layoutJSON, err := json.Marshal(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion})
	if err != nil {
		return nil, err
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, d := range []string{"blobs/", "blobs/sha256/"} {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: epoch}); err != nil {
			return nil, err
		}
	}
	files := []struct {
		name string
		data []byte
	}{
		{ocispec.ImageLayoutFile, layoutJSON},
		{"index.json", indexJSON},
		{blobPath(manifestJSON), manifestJSON},
		{blobPath(configJSON), configJSON},
		{blobPath(layer), layer},
	}
	for _, f := range files {
		if err := writeFile(tw, f.name, 0o644, f.data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// busyboxLayer returns the gzipped layer and the digest of its uncompressed
// tar (the diff ID).
func busyboxLayer(bin []byte, applets []string) (gz []byte, diffID digest.Digest, err error) {
	var raw bytes.Buffer
	tw := tar.NewWriter(&raw)
	dirs := []struct {
		name string
		mode int64
	}{{"bin/", 0o755}, {"etc/", 0o755}, {"root/", 0o700}, {"tmp/", 0o1777}}
	for _, d := range dirs {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d.name, Mode: d.mode, ModTime: epoch, Uname: "root", Gname: "root"}); err != nil {
			return nil, "", err
		}
	}
	if err := writeFile(tw, "bin/busybox", 0o755, bin); err != nil {
		return nil, "", err
	}
	for _, a := range applets {
		h := &tar.Header{Typeflag: tar.TypeSymlink, Name: "bin/" + a, Linkname: "busybox", Mode: 0o777, ModTime: epoch, Uname: "root", Gname: "root"}
		if err := tw.WriteHeader(h); err != nil {
			return nil, "", err
		}
	}
	passwd := "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
	group := "root:x:0:\nnobody:x:65534:\n"
	if err := writeFile(tw, "etc/passwd", 0o644, []byte(passwd)); err != nil {
		return nil, "", err
	}
	if err := writeFile(tw, "etc/group", 0o644, []byte(group)); err != nil {
		return nil, "", err
	}
	if err := tw.Close(); err != nil {
		return nil, "", err
	}
	diffID = digest.FromBytes(raw.Bytes())

	var out bytes.Buffer
	zw, err := gzip.NewWriterLevel(&out, gzip.BestSpeed) // no name, no mtime: deterministic
	if err != nil {
		return nil, "", err
	}
	if _, err := io.Copy(zw, &raw); err != nil {
		return nil, "", err
	}
	if err := zw.Close(); err != nil {
		return nil, "", err
	}
	return out.Bytes(), diffID, nil
}

func writeFile(tw *tar.Writer, name string, mode int64, data []byte) error {
	h := &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(data)), ModTime: epoch, Uname: "root", Gname: "root"}
	if err := tw.WriteHeader(h); err != nil {
		return err
	}
	_, err := tw.Write(data)
	return err
}

func descriptor(mediaType string, data []byte) ocispec.Descriptor {
	return ocispec.Descriptor{MediaType: mediaType, Digest: digest.FromBytes(data), Size: int64(len(data))}
}

func blobPath(data []byte) string {
	return "blobs/sha256/" + digest.FromBytes(data).Encoded()
}
