package crispec_test

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	v1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/crispec"
)

// testdata/kubelet_env.json holds what the kubelet computes for container
// environments, hostnames, volume mounts and hosts files, on a node and
// with ConfigMaps and Secrets described in the same file.
type envGolden struct {
	ClusterDomain string                   `json:"clusterDomain"`
	NodeIPs       []string                 `json:"nodeIPs"`
	Allocatable   v1.ResourceList          `json:"allocatable"`
	ConfigMaps    map[string]*v1.ConfigMap `json:"configMaps"`
	Secrets       map[string]*v1.Secret    `json:"secrets"`
	Env           []struct {
		Name       string            `json:"name"`
		Pod        *v1.Pod           `json:"pod"`
		Container  string            `json:"container"`
		PodIPs     []string          `json:"podIPs"`
		ServiceEnv map[string]string `json:"serviceEnv"`
		Env        []struct{ Name, Value string }
		Error      string `json:"error"`
	} `json:"env"`
	Hostnames []struct {
		Name     string  `json:"name"`
		Pod      *v1.Pod `json:"pod"`
		Hostname string  `json:"hostname"`
		Error    string  `json:"error"`
	} `json:"hostnames"`
	Mounts []struct {
		Name    string   `json:"name"`
		Pod     *v1.Pod  `json:"pod"`
		PodIPs  []string `json:"podIPs"`
		Volumes map[string]struct {
			Path       string `json:"path"`
			Attributes struct{ ReadOnly, Managed, SELinuxRelabel bool }
		} `json:"volumes"`
		ImageVolumes map[string]*runtimeapi.ImageSpec `json:"imageVolumes"`
		SupportsRRO  bool                             `json:"supportsRRO"`
		EtcHosts     string                           `json:"etcHosts"`
		Mounts       []kubeletMount                   `json:"mounts"`
		HostsFile    string                           `json:"hostsFile"`
		NodeHosts    string                           `json:"nodeHosts"`
		Error        string                           `json:"error"`
	} `json:"mounts"`
}

// kubeletMount is a mount as the kubelet prepares it, before CRI.
type kubeletMount struct {
	ContainerPath     string
	HostPath          string
	ReadOnly          bool
	RecursiveReadOnly bool
	SELinuxRelabel    bool
	Propagation       runtimeapi.MountPropagation
	Image             *runtimeapi.ImageSpec
	ImageSubPath      string
	BindMountOptions  []string
}

func loadEnvGolden(t *testing.T) *envGolden {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "kubelet_env.json"))
	if err != nil {
		t.Fatal(err)
	}
	var g envGolden
	if err := json.Unmarshal(b, &g); err != nil {
		t.Fatal(err)
	}
	return &g
}

func (g *envGolden) translator(t *testing.T) *crispec.Translator {
	notFound := func(resource, name string) error {
		return apierrors.NewNotFound(schema.GroupResource{Resource: resource}, name)
	}
	return newTranslator(t, crispec.Config{
		ClusterDomain:   g.ClusterDomain,
		NodeIPs:         g.NodeIPs,
		NodeAllocatable: g.Allocatable,
		MemoryCapacity:  64 << 30,
		SELinuxEnabled:  true,
		ConfigMaps: crispec.ConfigMapGetterFunc(func(ns, name string) (*v1.ConfigMap, error) {
			if cm, ok := g.ConfigMaps[ns+"/"+name]; ok {
				return cm, nil
			}
			return nil, notFound("configmaps", name)
		}),
		Secrets: crispec.SecretGetterFunc(func(ns, name string) (*v1.Secret, error) {
			if s, ok := g.Secrets[ns+"/"+name]; ok {
				return s, nil
			}
			return nil, notFound("secrets", name)
		}),
	})
}

func TestEnvMatchesKubelet(t *testing.T) {
	g := loadEnvGolden(t)
	tr := g.translator(t)
	for _, tc := range g.Env {
		t.Run(tc.Name, func(t *testing.T) {
			c := &tc.Pod.Spec.Containers[0]
			cfg, err := tr.ContainerConfig(tc.Pod, c, crispec.ContainerOptions{PodIPs: tc.PodIPs, ServiceEnv: tc.ServiceEnv})
			if tc.Error != "" {
				if err == nil {
					t.Fatalf("no error; the kubelet fails with %q", tc.Error)
				}
				if !errors.Is(err, core.ErrInvalid) && !isNotFound(err) {
					t.Errorf("error %v is neither invalid nor not found", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got, want []string
			for _, kv := range cfg.Envs {
				got = append(got, kv.Key+"="+string(kv.Value))
			}
			for _, e := range tc.Env {
				want = append(want, e.Name+"="+e.Value)
			}
			sort.Strings(got)
			sort.Strings(want)
			assertLines(t, "env", got, want)
		})
	}
}

func isNotFound(err error) bool {
	return errors.Is(err, core.ErrNotFound) || apierrors.IsNotFound(err)
}

func TestHostnameMatchesKubelet(t *testing.T) {
	g := loadEnvGolden(t)
	tr := g.translator(t)
	for _, tc := range g.Hostnames {
		t.Run(tc.Name, func(t *testing.T) {
			sb, err := tr.SandboxConfig(tc.Pod, 0, crispec.SandboxOptions{})
			if tc.Error != "" {
				if !errors.Is(err, core.ErrInvalid) {
					t.Fatalf("error %v; the kubelet fails with %q", err, tc.Error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if sb.Hostname != tc.Hostname {
				t.Errorf("hostname %q, the kubelet's is %q", sb.Hostname, tc.Hostname)
			}
		})
	}
}

func TestMountsMatchKubelet(t *testing.T) {
	g := loadEnvGolden(t)
	tr := g.translator(t)
	for _, tc := range g.Mounts {
		t.Run(tc.Name, func(t *testing.T) {
			volumes := map[string]crispec.Volume{}
			for name, v := range tc.Volumes {
				volumes[name] = crispec.Volume{
					HostPath:       v.Path,
					ReadOnly:       v.Attributes.ReadOnly,
					SELinuxRelabel: v.Attributes.Managed && v.Attributes.SELinuxRelabel,
				}
			}
			for name, img := range tc.ImageVolumes {
				volumes[name] = crispec.Volume{Image: img}
			}
			c := &tc.Pod.Spec.Containers[0]
			cfg, err := tr.ContainerConfig(tc.Pod, c, crispec.ContainerOptions{
				PodIPs:                    tc.PodIPs,
				Volumes:                   volumes,
				SupportsRecursiveReadOnly: tc.SupportsRRO,
				EtcHostsPath:              tc.EtcHosts,
			})
			if tc.Error != "" {
				if err == nil {
					t.Fatalf("no error; the kubelet fails with %q", tc.Error)
				}
				if !errors.Is(err, core.ErrInvalid) && !errors.Is(err, core.ErrNotFound) {
					t.Errorf("error %v is neither invalid nor not found", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []kubeletMount
			for _, m := range cfg.Mounts {
				got = append(got, kubeletMount{
					ContainerPath: m.ContainerPath, HostPath: m.HostPath, ReadOnly: m.Readonly,
					RecursiveReadOnly: m.RecursiveReadOnly, SELinuxRelabel: m.SelinuxRelabel,
					Propagation: m.Propagation, Image: m.Image, ImageSubPath: m.ImageSubPath,
					BindMountOptions: m.MountOptions,
				})
			}
			assertSameJSON(t, "mounts", got, tc.Mounts)

			if tc.HostsFile != "" {
				b, err := tr.HostsFile(tc.Pod, tc.PodIPs, []byte(tc.NodeHosts))
				if err != nil {
					t.Fatal(err)
				}
				if string(b) != tc.HostsFile {
					t.Errorf("hosts file:\n%s", lineDiff(tc.HostsFile, string(b)))
				}
			}
		})
	}
}

// The golden files must exercise what they claim to.
func TestEnvGoldenCoverage(t *testing.T) {
	g := loadEnvGolden(t)
	var envs, mounts, errs, hosts int
	for _, e := range g.Env {
		if len(e.Env) > 0 {
			envs++
		}
	}
	for _, m := range g.Mounts {
		if m.Error != "" {
			errs++
		}
		if len(m.Mounts) > 0 {
			mounts++
		}
		if m.HostsFile != "" {
			hosts++
		}
	}
	if envs < 7 || len(g.Hostnames) < 10 || mounts < 4 || errs < 5 || hosts < 2 {
		t.Errorf("golden file too thin: %d envs, %d hostnames, %d mount lists, %d mount errors, %d hosts files",
			envs, len(g.Hostnames), mounts, errs, hosts)
	}
	if !strings.Contains(string(mustJSON(t, g.Env)), "$$(A)") {
		t.Error("env golden lost its escape case")
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
