package imagegc_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	digest "github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"go.uber.org/zap/zaptest"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/cri"
	"github.com/nodekit/nodekit/imagegc"
	"github.com/nodekit/nodekit/internal/testenv"
)

// ociArchive writes an OCI image layout holding one image, tagged
// "latest", to path: one uncompressed layer of the given files and a
// config whose label makes the image's ID its own.
func ociArchive(t *testing.T, path, label string, files map[string][]byte, cmd []string) {
	t.Helper()
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if dir := filepath.Dir(name); dir != "." {
			if err := lw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: dir + "/", Mode: 0o755}); err != nil {
				t.Fatal(err)
			}
		}
		if err := lw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o755, Size: int64(len(files[name]))}); err != nil {
			t.Fatal(err)
		}
		if _, err := lw.Write(files[name]); err != nil {
			t.Fatal(err)
		}
	}
	if err := lw.Close(); err != nil {
		t.Fatal(err)
	}
	blobs := map[digest.Digest][]byte{}
	blob := func(mediaType string, data []byte) ocispec.Descriptor {
		d := digest.FromBytes(data)
		blobs[d] = data
		return ocispec.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
	}
	mustJSON := func(v any) []byte {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	layerDesc := blob(ocispec.MediaTypeImageLayer, layer.Bytes())
	platform := ocispec.Platform{Architecture: runtime.GOARCH, OS: "linux"}
	config := blob(ocispec.MediaTypeImageConfig, mustJSON(ocispec.Image{
		Platform: platform,
		Config:   ocispec.ImageConfig{Cmd: cmd, Labels: map[string]string{"nodekit.test/role": label}},
		RootFS:   ocispec.RootFS{Type: "layers", DiffIDs: []digest.Digest{layerDesc.Digest}},
	}))
	manifest := blob(ocispec.MediaTypeImageManifest, mustJSON(ocispec.Manifest{
		Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageManifest,
		Config: config, Layers: []ocispec.Descriptor{layerDesc},
	}))
	manifest.Platform = &platform
	manifest.Annotations = map[string]string{ocispec.AnnotationRefName: "latest"}
	index := mustJSON(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex,
		Manifests: []ocispec.Descriptor{manifest}})

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	put := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(data))}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	put(ocispec.ImageLayoutFile, mustJSON(ocispec.ImageLayout{Version: ocispec.ImageLayoutVersion}))
	put("index.json", index)
	for d, data := range blobs {
		put("blobs/sha256/"+d.Encoded(), data)
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// ctrFor is the ctr client of the containerd version.
func ctrFor(v testenv.Version) string {
	if v == testenv.Containerd16 {
		return "/usr/bin/ctr"
	}
	return filepath.Join(testenv.Containerd2BinDir(), "ctr")
}

// On real containerd: of two imported images, the one a running pod's
// container uses stays, the other is removed, and so is nothing else: the
// sandbox image stays too, known from the sandbox's verbose status.
func TestDeleteUnusedImagesContainerd(t *testing.T) {
	for _, v := range testenv.Versions {
		t.Run("containerd-"+string(v), func(t *testing.T) { testDeleteUnusedOn(t, v) })
	}
}

func testDeleteUnusedOn(t *testing.T, v testenv.Version) {
	cd := testenv.StartContainerd(t, testenv.Options{Version: v})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	rt, err := cri.New(ctx, cri.Config{Endpoint: cd.Endpoint(), Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()

	busybox, err := os.ReadFile(testenv.BusyboxBinary)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	const used, unused = "localhost/imagegc-used:latest", "localhost/imagegc-unused:latest"
	ociArchive(t, filepath.Join(dir, "used.tar"), "used", map[string][]byte{"bin/busybox": busybox}, []string{"/bin/busybox", "sleep", "3600"})
	ociArchive(t, filepath.Join(dir, "unused.tar"), "unused", map[string][]byte{"hello.txt": []byte("never run\n")}, []string{"/hello.txt"})
	for _, ref := range []string{used, unused} {
		name, _, _ := strings.Cut(ref, ":")
		tarball := filepath.Join(dir, strings.TrimPrefix(name, "localhost/imagegc-")+".tar")
		cmd := exec.CommandContext(ctx, ctrFor(v), "--address", cd.Address(), "--namespace", "k8s.io",
			"images", "import", "--base-name", name, "--digests=false", tarball)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(cmd.Args, " "), err, out)
		}
	}
	// containerd 1.6 learns of an import through an event.
	deadline := time.Now().Add(10 * time.Second)
	for {
		refs := listedTags(t, ctx, rt)
		if slices.Contains(refs, used) && slices.Contains(refs, unused) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("CRI lists %q, not both imported images", refs)
		}
		time.Sleep(100 * time.Millisecond)
	}

	sbCfg := &runtimeapi.PodSandboxConfig{
		Metadata: &runtimeapi.PodSandboxMetadata{Name: "web", Namespace: "imagegc", Uid: "6f1c2a9e-0d3b-4c55-9a8e-2b7d4e1f0a11"},
		Linux: &runtimeapi.LinuxPodSandboxConfig{CgroupParent: cd.CgroupParent, SecurityContext: &runtimeapi.LinuxSandboxSecurityContext{
			NamespaceOptions: &runtimeapi.NamespaceOption{Network: runtimeapi.NamespaceMode_NODE}}},
	}
	sb, err := rt.RunPodSandbox(ctx, sbCfg, "")
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := rt.CreateContainer(ctx, sb, &runtimeapi.ContainerConfig{Metadata: &runtimeapi.ContainerMetadata{Name: "app"},
		Image: &runtimeapi.ImageSpec{Image: used}}, sbCfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.StartContainer(ctx, ctr); err != nil {
		t.Fatal(err)
	}

	gc, err := imagegc.New(imagegc.Config{Images: rt, Containers: rt, Sandboxes: rt, ImageFs: rt,
		// MinAge 0: the images were imported a moment ago. High 100: the
		// host's disk usage must not decide what this test removes.
		Policy: &imagegc.Policy{HighThresholdPercent: 100, LowThresholdPercent: 80}, Logger: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	images, inUse, err := gc.Detect(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var usedNames []string
	for _, img := range images {
		if inUse[img.ID] {
			usedNames = append(usedNames, img.RepoTags...)
		}
	}
	slices.Sort(usedNames)
	// The sandbox image is in use through the sandbox's verbose status.
	if want := []string{testenv.BusyboxImage, used}; !slices.Equal(usedNames, want) {
		t.Errorf("in use: %q, want %q", usedNames, want)
	}

	if err := gc.DeleteUnusedImages(ctx); err != nil {
		t.Fatal(err)
	}
	res, _ := gc.Last()
	if len(res.Deleted) != 1 || res.Deleted[0].Image.String() != unused || res.Deleted[0].Image.Size == 0 || res.BytesFreed != res.Deleted[0].Image.Size {
		t.Errorf("deleted %+v", res)
	}
	if got, want := listedTags(t, ctx, rt), []string{testenv.BusyboxImage, used}; !slices.Equal(got, want) {
		t.Errorf("images left %q, want %q", got, want)
	}
	// The container still runs; a collection now frees nothing more.
	st, err := rt.ContainerStatus(ctx, ctr, false)
	if err != nil || st.GetStatus().GetState() != runtimeapi.ContainerState_CONTAINER_RUNNING {
		t.Errorf("container after the collection: %v %v", st.GetStatus().GetState(), err)
	}
	res, err = gc.GarbageCollect(ctx)
	if err != nil || len(res.Deleted) != 0 || res.UsagePercent < 0 {
		t.Errorf("GarbageCollect: %v %+v", err, res)
	}
	t.Logf("image filesystem at %d%%; freed %d bytes", res.UsagePercent, res.BytesFreed)
}

func listedTags(t *testing.T, ctx context.Context, rt *cri.Runtime) []string {
	t.Helper()
	imgs, err := rt.ListImages(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, img := range imgs {
		out = append(out, img.GetRepoTags()...)
	}
	slices.Sort(out)
	return out
}
