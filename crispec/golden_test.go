package crispec_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"

	v1 "k8s.io/api/core/v1"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// testdata/kubelet.json holds pods together with the sandbox and container
// configs the kubelet generates for them on a node described by the other
// fields. The kubelet's environment there is reduced to what the package
// takes as options: env values are literals, volumes are not mounted and
// hostnames are plain pod names.
type goldenCase struct {
	Name             string                       `json:"name"`
	CgroupV2         bool                         `json:"cgroupV2"`
	ThrottlingFactor float64                      `json:"memoryThrottlingFactor"`
	Tiered           bool                         `json:"tieredReservation"`
	NodeAllocatable  v1.ResourceList              `json:"nodeAllocatable"`
	HugePageSizes    []string                     `json:"hugePageSizes"`
	ExtraMaskedPaths []string                     `json:"extraMaskedPaths"`
	MemoryCapacity   int64                        `json:"memoryCapacity"`
	CgroupParent     string                       `json:"cgroupParent"`
	DNS              *runtimeapi.DNSConfig        `json:"dns"`
	PodIPs           []string                     `json:"podIPs"`
	ImageRef         string                       `json:"imageRef"`
	ImageUsers       map[string]crispec.ImageUser `json:"imageUsers"`
	Attempt          uint32                       `json:"attempt"`
	Pod              *v1.Pod                      `json:"pod"`
	Sandbox          json.RawMessage              `json:"sandbox"`
	SandboxError     string                       `json:"sandboxError"`
	Containers       []struct {
		Name         string          `json:"name"`
		RestartCount int             `json:"restartCount"`
		Config       json.RawMessage `json:"config"`
		Error        string          `json:"error"`
	} `json:"containers"`
}

func TestMatchesKubelet(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "kubelet.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cases []goldenCase
	if err := json.Unmarshal(b, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for _, gc := range cases {
		t.Run(gc.Name, func(t *testing.T) {
			tr, err := crispec.New(crispec.Config{
				CgroupV2:                gc.CgroupV2,
				MemoryThrottlingFactor:  gc.ThrottlingFactor,
				TieredMemoryReservation: gc.Tiered,
				NodeAllocatable:         gc.NodeAllocatable,
				HugePageSizes:           gc.HugePageSizes,
				ExtraMaskedPaths:        gc.ExtraMaskedPaths,
				MemoryCapacity:          gc.MemoryCapacity,
			})
			if err != nil {
				t.Fatal(err)
			}
			var userns *runtimeapi.UserNamespace
			if gc.Pod.Spec.HostUsers != nil && !*gc.Pod.Spec.HostUsers {
				ids := &runtimeapi.IDMapping{HostId: 65536, ContainerId: 0, Length: 65536}
				userns = &runtimeapi.UserNamespace{Mode: runtimeapi.NamespaceMode_POD, Uids: []*runtimeapi.IDMapping{ids}, Gids: []*runtimeapi.IDMapping{ids}}
			}

			sb, err := tr.SandboxConfig(gc.Pod, gc.Attempt, crispec.SandboxOptions{
				CgroupParent:  gc.CgroupParent,
				DNS:           gc.DNS,
				UserNamespace: userns,
			})
			if gc.SandboxError != "" {
				if err == nil {
					t.Errorf("sandbox: no error, the kubelet fails with %q", gc.SandboxError)
				}
			} else if err != nil {
				t.Errorf("sandbox: %v", err)
			} else {
				compareJSON(t, "sandbox", sb, gc.Sandbox)
			}

			all := append(append([]v1.Container{}, gc.Pod.Spec.InitContainers...), gc.Pod.Spec.Containers...)
			if len(all) != len(gc.Containers) {
				t.Fatalf("%d containers in the pod, %d in the golden file", len(all), len(gc.Containers))
			}
			for i := range all {
				c := &all[i]
				want := gc.Containers[i]
				got, err := tr.ContainerConfig(gc.Pod, c, crispec.ContainerOptions{
					RestartCount:  want.RestartCount,
					PodIPs:        gc.PodIPs,
					ImageRef:      gc.ImageRef,
					ImageUser:     gc.ImageUsers[c.Image],
					UserNamespace: userns,
				})
				if want.Error != "" {
					if err == nil {
						t.Errorf("container %s: no error, the kubelet fails with %q", c.Name, want.Error)
					} else if !errors.Is(err, core.ErrInvalid) {
						t.Errorf("container %s: error %v does not match core.ErrInvalid", c.Name, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("container %s: %v", c.Name, err)
					continue
				}
				compareJSON(t, "container "+c.Name, got, want.Config)
			}
		})
	}
}

// compareJSON compares a config with the JSON the kubelet's config
// marshals to. Environment variables are compared as a set: the kubelet
// emits them in map order.
func compareJSON(t *testing.T, what string, got any, want json.RawMessage) {
	t.Helper()
	gb, err := json.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	var g, w any
	if err := json.Unmarshal(gb, &g); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	sortEnvs(g)
	sortEnvs(w)
	gs, _ := json.MarshalIndent(g, "", "  ")
	ws, _ := json.MarshalIndent(w, "", "  ")
	if string(gs) != string(ws) {
		t.Errorf("%s differs from the kubelet's:\n%s", what, lineDiff(string(ws), string(gs)))
	}
}

func sortEnvs(v any) {
	m, ok := v.(map[string]any)
	if !ok {
		return
	}
	envs, ok := m["envs"].([]any)
	if !ok {
		return
	}
	sort.SliceStable(envs, func(i, j int) bool {
		return envs[i].(map[string]any)["key"].(string) < envs[j].(map[string]any)["key"].(string)
	})
}
