package crispec

import (
	"encoding/json"
	"hash/fnv"
	"io"

	v1 "k8s.io/api/core/v1"
	"k8s.io/utils/dump"
)

// ContainerHash is the hash the kubelet stores in the
// io.kubernetes.container.hash annotation and compares with the spec to
// decide whether a running container must be restarted. It covers only the
// container's name and image, the fields the kubelet lets change in place
// of a restart; the value is the kubelet's, so containers created by either
// are recognised by the other. A nil container hashes like an empty one.
func ContainerHash(c *v1.Container) uint64 {
	var name, image string
	if c != nil {
		name, image = c.Name, c.Image
	}
	// A map marshals with sorted keys: {"image":...,"name":...}. Marshaling
	// a map of strings cannot fail (invalid UTF-8 is replaced, not refused).
	b, _ := json.Marshal(map[string]string{"name": name, "image": image})
	h := fnv.New32a()
	// The kubelet hashes the dump of the JSON bytes, not the bytes.
	_, _ = io.WriteString(h, dump.ForHash(b))
	return uint64(h.Sum32())
}
