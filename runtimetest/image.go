package runtimetest

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// imageFsMountpoint is where containerd's overlayfs snapshotter keeps image
// layers and writable layers.
const imageFsMountpoint = "/var/lib/containerd/io.containerd.snapshotter.v1.overlayfs"

// image is one image: a reference with a derived ID and repo digest, so
// that the same reference always gives the same image.
type image struct {
	id      string   // sha256:<64 hex digits>
	tags    []string // normalised name:tag references
	digests []string // name@sha256:<digest> references
	size    uint64
}

func (img *image) hasRef(ref string) bool {
	return ref == img.id || slices.Contains(img.tags, ref) || slices.Contains(img.digests, ref)
}

type imageStore struct {
	byID     map[string]*image
	byRef    map[string]*image // tags and digests
	registry map[string]uint64 // pullable references and their sizes
}

func newImageStore() imageStore {
	return imageStore{byID: make(map[string]*image), byRef: make(map[string]*image), registry: make(map[string]uint64)}
}

// resolve finds a present image by ID (with or without "sha256:") or by
// reference, as containerd's local resolution does.
func (s *imageStore) resolve(ref string) *image {
	id := ref
	if len(id) == 64 && isHex(id) {
		id = "sha256:" + id
	}
	if img, ok := s.byID[id]; ok {
		return img
	}
	norm, err := normalizeRef(ref)
	if err != nil {
		return nil
	}
	return s.byRef[norm]
}

// add makes the image of a normalised reference present.
func (s *imageStore) add(ref string, size uint64) *image {
	if img, ok := s.byRef[ref]; ok {
		img.size = size
		return img
	}
	img := &image{id: "sha256:" + digestOf("image", ref), size: size}
	name, _, isDigest := strings.Cut(ref, "@")
	if isDigest {
		img.digests = []string{ref}
	} else {
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			name = name[:i]
		}
		img.tags = []string{ref}
		img.digests = []string{name + "@sha256:" + digestOf("manifest", ref)}
	}
	s.byID[img.id] = img
	for _, r := range append(slices.Clone(img.tags), img.digests...) {
		s.byRef[r] = img
	}
	return img
}

func (s *imageStore) remove(img *image) {
	delete(s.byID, img.id)
	for _, r := range append(slices.Clone(img.tags), img.digests...) {
		delete(s.byRef, r)
	}
}

func digestOf(kind, ref string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + ref))
	return hex.EncodeToString(sum[:])
}

func isHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}

// normalizeRef normalises an image reference as containerd does: a name
// without a registry is on docker.io, a single-component name there is in
// library/, and a reference without tag or digest is :latest.
func normalizeRef(ref string) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("image reference %q: %w: %s", ref, core.ErrInvalid, why)
	}
	if ref == "" {
		return bad("empty")
	}
	name, digest, hasDigest := strings.Cut(ref, "@")
	if hasDigest {
		hexPart, ok := strings.CutPrefix(digest, "sha256:")
		if !ok || len(hexPart) != 64 || !isHex(hexPart) {
			return bad("digest is not sha256:<64 hex digits>")
		}
	}
	var tag string
	if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
		name, tag = name[:i], name[i+1:]
		if tag == "" || len(tag) > 128 || strings.Trim(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != "" {
			return bad("invalid tag")
		}
	}
	domain, path, ok := strings.Cut(name, "/")
	if !ok || (!strings.ContainsAny(domain, ".:") && domain != "localhost" && strings.ToLower(domain) == domain) {
		domain, path = "docker.io", name
	}
	host, port, hasPort := strings.Cut(domain, ":")
	if host == "" || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") != "" ||
		(hasPort && (port == "" || strings.Trim(port, "0123456789") != "")) {
		return bad("invalid registry host")
	}
	if domain == "docker.io" && !strings.Contains(path, "/") {
		path = "library/" + path
	}
	if path == "" || strings.Trim(path, "abcdefghijklmnopqrstuvwxyz0123456789._/-") != "" {
		return bad("repository names are lowercase letters, digits and . _ / -")
	}
	out := domain + "/" + path
	if tag != "" {
		out += ":" + tag
	} else if !hasDigest {
		out += ":latest"
	}
	if hasDigest {
		out += "@" + digest
	}
	return out, nil
}

// AddImage makes an image present, as if imported, with the given size.
// Errors wrap core.ErrInvalid.
func (r *Runtime) AddImage(ref string, size uint64) error {
	norm, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images.add(norm, size)
	return nil
}

// AddPullableImage puts an image in the simulated registry, so that
// PullImage can pull it; pulled, it has the given size. Errors wrap
// core.ErrInvalid.
func (r *Runtime) AddPullableImage(ref string, size uint64) error {
	norm, err := normalizeRef(ref)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.images.registry[norm] = size
	return nil
}

// ImageStatus implements core.ImageStatuser. image may be a reference or
// an image ID. verbose is ignored.
func (r *Runtime) ImageStatus(ctx context.Context, image *runtimeapi.ImageSpec, verbose bool) (*runtimeapi.ImageStatusResponse, error) {
	if err := r.enter(ctx, "ImageStatus"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	img := r.images.resolve(image.GetImage())
	if img == nil {
		return &runtimeapi.ImageStatusResponse{}, nil
	}
	return &runtimeapi.ImageStatusResponse{Image: img.toCRI()}, nil
}

func (img *image) toCRI() *runtimeapi.Image {
	return &runtimeapi.Image{
		Id:          img.id,
		RepoTags:    slices.Clone(img.tags),
		RepoDigests: slices.Clone(img.digests),
		Size:        img.size,
	}
}

// PullImage implements core.ImagePuller. Only images added with
// AddPullableImage or Config.PullableImages can be pulled; any other is
// core.ErrNotFound. It returns the image ID, as containerd does. Slow or
// failing pulls are simulated with InjectFault. Credentials are ignored.
func (r *Runtime) PullImage(ctx context.Context, image *runtimeapi.ImageSpec, auth *runtimeapi.AuthConfig, sandboxConfig *runtimeapi.PodSandboxConfig) (string, error) {
	if err := r.enter(ctx, "PullImage"); err != nil {
		return "", err
	}
	ref, err := normalizeRef(image.GetImage())
	if err != nil {
		return "", fmt.Errorf("pull image: %w", err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	size, ok := r.images.registry[ref]
	if !ok {
		return "", fmt.Errorf("pull image %q: %w: no such image in the registry", ref, core.ErrNotFound)
	}
	return r.images.add(ref, size).id, nil
}

// ListImages implements core.ImageManager. A filter image (reference or
// ID) narrows the list to that image, as the CRI API defines; containerd
// ignores the filter and lists every image.
func (r *Runtime) ListImages(ctx context.Context, filter *runtimeapi.ImageFilter) ([]*runtimeapi.Image, error) {
	if err := r.enter(ctx, "ListImages"); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	out := []*runtimeapi.Image{}
	if ref := filter.GetImage().GetImage(); ref != "" {
		if img := r.images.resolve(ref); img != nil {
			out = append(out, img.toCRI())
		}
		return out, nil
	}
	for _, img := range r.images.byID {
		out = append(out, img.toCRI())
	}
	slices.SortFunc(out, func(a, b *runtimeapi.Image) int { return cmp.Compare(a.Id, b.Id) })
	return out, nil
}

// RemoveImage implements core.ImageManager. It removes the image with all
// its references, even if containers use it, as containerd does. Removing
// an absent image succeeds.
func (r *Runtime) RemoveImage(ctx context.Context, image *runtimeapi.ImageSpec) error {
	if err := r.enter(ctx, "RemoveImage"); err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if img := r.images.resolve(image.GetImage()); img != nil {
		r.images.remove(img)
	}
	return nil
}
