package crispec

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	netutils "k8s.io/utils/net"

	"github.com/nodekit/nodekit/core"
)

// Defaults applied by New to zero fields of Config.
const (
	DefaultPodLogsRoot        = "/var/log/pods"
	DefaultSeccompProfileRoot = "/var/lib/kubelet/seccomp"
	DefaultCPUCFSQuotaPeriod  = 100 * time.Millisecond
)

// ConfigMapGetter returns a ConfigMap by namespace and name. A missing
// ConfigMap is an error matching core.ErrNotFound (or an API NotFound
// error); any other error is passed through unchanged. The kubelet's
// ConfigMap manager has this method.
type ConfigMapGetter interface {
	GetConfigMap(namespace, name string) (*v1.ConfigMap, error)
}

// ConfigMapGetterFunc adapts a function to ConfigMapGetter.
type ConfigMapGetterFunc func(namespace, name string) (*v1.ConfigMap, error)

// GetConfigMap calls f.
func (f ConfigMapGetterFunc) GetConfigMap(namespace, name string) (*v1.ConfigMap, error) {
	return f(namespace, name)
}

// SecretGetter returns a Secret by namespace and name, with the same error
// contract as ConfigMapGetter. The kubelet's Secret manager has this method.
type SecretGetter interface {
	GetSecret(namespace, name string) (*v1.Secret, error)
}

// SecretGetterFunc adapts a function to SecretGetter.
type SecretGetterFunc func(namespace, name string) (*v1.Secret, error)

// GetSecret calls f.
func (f SecretGetterFunc) GetSecret(namespace, name string) (*v1.Secret, error) {
	return f(namespace, name)
}

var (
	_ ConfigMapGetter = ConfigMapGetterFunc(nil)
	_ SecretGetter    = SecretGetterFunc(nil)
)

// Config describes the node a Translator translates for. The zero value is
// usable: New fills in the defaults below, and anything left unset makes
// only the translations that need it fail, with an error naming the field.
type Config struct {
	// PodLogsRoot is the directory holding one log directory per pod.
	// Default DefaultPodLogsRoot.
	PodLogsRoot string

	// ClusterDomain is the cluster's DNS domain ("cluster.local"). It
	// completes the domain of pods that set spec.subdomain:
	// <subdomain>.<namespace>.svc.<ClusterDomain>.
	ClusterDomain string

	// NodeIPs are the node's IP addresses, primary first. They answer the
	// downward API fields status.hostIP and status.hostIPs, and their
	// family decides which pod IP is reported as status.podIP.
	NodeIPs []string

	// NodeAllocatable stands in for a container's cpu, memory or
	// ephemeral-storage limit when a resourceFieldRef asks for a limit the
	// container does not set. Required only for such env vars.
	NodeAllocatable v1.ResourceList

	// MemoryCapacity is the node's memory in bytes. The OOM score of
	// Burstable containers is relative to it. Required for Burstable pods.
	MemoryCapacity int64

	// DisableCPUCFSQuota turns off CFS quota enforcement of CPU limits
	// (the kubelet's cpuCFSQuota: false). Containers then get no
	// cpu_quota or cpu_period.
	DisableCPUCFSQuota bool

	// CPUCFSQuotaPeriod is the CFS period, between 1ms and 1s. Default
	// DefaultCPUCFSQuotaPeriod.
	CPUCFSQuotaPeriod time.Duration

	// CgroupV2 says the node runs the unified cgroup v2 hierarchy. It adds
	// the cgroup v2 "unified" settings the kubelet sets (memory.oom.group,
	// memory QoS, memory.swap.max).
	CgroupV2 bool

	// DisableMemoryQoS turns off memory QoS on cgroup v2 (the kubelet's
	// MemoryQoS feature, on by default). With it on, containers get
	// memory.min and memory.low, and memory.high when
	// MemoryThrottlingFactor is set; with it off, memory.high is reset to
	// "max".
	DisableMemoryQoS bool

	// TieredMemoryReservation protects memory requests (the kubelet's
	// memoryReservationPolicy: TieredReservation): memory.min is the
	// request in Guaranteed pods, memory.low in the others. Otherwise
	// both are 0.
	TieredMemoryReservation bool

	// MemoryThrottlingFactor, in (0, 1], sets memory.high to request +
	// factor × (limit − request), rounded down to whole pages, where the
	// limit is NodeAllocatable's memory for containers without one. Zero,
	// the kubelet's default, sets no memory.high.
	MemoryThrottlingFactor float64

	// SingleProcessOOMKill keeps the kernel from killing every process of a
	// container on OOM (no memory.oom.group). Meaningful on cgroup v2 only;
	// cgroup v1 always kills single processes.
	SingleProcessOOMKill bool

	// SwapController says the node has a swap cgroup controller. Without
	// one the kubelet leaves swap settings alone.
	SwapController bool

	// LimitedSwap selects the kubelet's LimitedSwap memory-swap behavior
	// (cgroup v2 only): Burstable containers may swap in proportion to
	// their memory request, everything else gets no swap. SwapCapacity is
	// the node's swap in bytes.
	LimitedSwap  bool
	SwapCapacity int64

	// HugePageSizes are the huge page sizes the node supports, in the
	// kernel's spelling ("2MB", "1GB"). Every container gets a limit for
	// each of them, zero unless it asks for that size.
	HugePageSizes []string

	// SeccompDefault makes RuntimeDefault the seccomp profile of containers
	// that set none (the kubelet's seccompDefault).
	SeccompDefault bool

	// SeccompProfileRoot is the directory Localhost seccomp profiles are
	// relative to. Default DefaultSeccompProfileRoot.
	SeccompProfileRoot string

	// SELinuxEnabled says SELinux is enabled on the node; only then are
	// mounts relabeled.
	SELinuxEnabled bool

	// DefaultPodSysctls are sysctls set in every pod sandbox, unless the
	// pod shares the host namespace they belong to; the pod's own sysctls
	// override them.
	DefaultPodSysctls map[string]string

	// ExtraMaskedPaths are masked in every container in addition to
	// DefaultMaskedPaths. The kubelet masks
	// /sys/devices/system/cpu/cpu<N>/thermal_throttle for every such
	// directory present on the node; list those here.
	ExtraMaskedPaths []string

	// ConfigMaps and Secrets resolve configMapKeyRef, secretKeyRef and
	// envFrom. When nil, a container that needs them is an error.
	ConfigMaps ConfigMapGetter
	Secrets    SecretGetter
}

// Translator turns pods into CRI configs for one node. It holds no mutable
// state: any number of goroutines may use one Translator.
type Translator struct {
	cfg Config
}

// New returns a Translator for cfg after filling in defaults. It reports an
// error wrapping core.ErrInvalid when a field is out of range.
func New(cfg Config) (*Translator, error) {
	if cfg.PodLogsRoot == "" {
		cfg.PodLogsRoot = DefaultPodLogsRoot
	}
	if cfg.SeccompProfileRoot == "" {
		cfg.SeccompProfileRoot = DefaultSeccompProfileRoot
	}
	if cfg.CPUCFSQuotaPeriod == 0 {
		cfg.CPUCFSQuotaPeriod = DefaultCPUCFSQuotaPeriod
	}
	// Own the slices and maps so that later changes by the caller do not
	// leak into translations.
	cfg.NodeIPs = slices.Clone(cfg.NodeIPs)
	cfg.HugePageSizes = slices.Clone(cfg.HugePageSizes)
	cfg.ExtraMaskedPaths = slices.Clone(cfg.ExtraMaskedPaths)
	if cfg.NodeAllocatable != nil {
		cfg.NodeAllocatable = cfg.NodeAllocatable.DeepCopy()
	}
	if cfg.DefaultPodSysctls != nil {
		m := make(map[string]string, len(cfg.DefaultPodSysctls))
		for k, v := range cfg.DefaultPodSysctls {
			m[k] = v
		}
		cfg.DefaultPodSysctls = m
	}

	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if !filepath.IsAbs(cfg.PodLogsRoot) {
		bad("PodLogsRoot %q is not an absolute path", cfg.PodLogsRoot)
	}
	if !filepath.IsAbs(cfg.SeccompProfileRoot) {
		bad("SeccompProfileRoot %q is not an absolute path", cfg.SeccompProfileRoot)
	}
	if cfg.CPUCFSQuotaPeriod < time.Millisecond || cfg.CPUCFSQuotaPeriod > time.Second {
		bad("CPUCFSQuotaPeriod %v is not between 1ms and 1s", cfg.CPUCFSQuotaPeriod)
	}
	if f := cfg.MemoryThrottlingFactor; f < 0 || f > 1 {
		bad("MemoryThrottlingFactor %v is not in (0, 1]", f)
	}
	if cfg.MemoryCapacity < 0 {
		bad("MemoryCapacity %d is negative", cfg.MemoryCapacity)
	}
	if cfg.SwapCapacity < 0 {
		bad("SwapCapacity %d is negative", cfg.SwapCapacity)
	}
	for i, ip := range cfg.NodeIPs {
		if netutils.ParseIPSloppy(ip) == nil {
			bad("NodeIPs[%d] %q is not an IP address", i, ip)
		}
	}
	for i, size := range cfg.HugePageSizes {
		if !validHugePageSize(size) {
			bad("HugePageSizes[%d] %q is not a page size such as 2MB or 1GB", i, size)
		}
	}
	for i, p := range cfg.ExtraMaskedPaths {
		if !filepath.IsAbs(p) {
			bad("ExtraMaskedPaths[%d] %q is not an absolute path", i, p)
		}
	}
	for name, q := range cfg.NodeAllocatable {
		if q.Sign() < 0 {
			bad("NodeAllocatable[%s] %s is negative", name, q.String())
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("crispec: invalid config: %w: %w", core.ErrInvalid, errors.Join(errs...))
	}
	return &Translator{cfg: cfg}, nil
}

// validHugePageSize reports whether s is a number followed by one of the
// units the kernel names page sizes with ("2MB", "1GB").
func validHugePageSize(s string) bool {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i > 0 && slices.Contains(hugePageUnits, s[i:])
}

// invalidError is input the kubelet would refuse or that cannot be
// expressed in CRI. It matches core.ErrInvalid.
type invalidError string

func (e invalidError) Error() string      { return string(e) }
func (invalidError) Is(target error) bool { return target == core.ErrInvalid }

func invalidf(format string, args ...any) error {
	return invalidError(fmt.Sprintf(format, args...))
}

// notFoundError is something the caller has not provided yet (a volume, a
// ConfigMap key). It matches core.ErrNotFound.
type notFoundError string

func (e notFoundError) Error() string      { return string(e) }
func (notFoundError) Is(target error) bool { return target == core.ErrNotFound }

func notFoundf(format string, args ...any) error {
	return notFoundError(fmt.Sprintf(format, args...))
}

func podErr(pod *v1.Pod, err error) error {
	return fmt.Errorf("pod %s/%s: %w", pod.Namespace, pod.Name, err)
}

func containerErr(pod *v1.Pod, c *v1.Container, err error) error {
	return fmt.Errorf("pod %s/%s container %q: %w", pod.Namespace, pod.Name, c.Name, err)
}

// quantityOrZero returns the quantity of name in list, or zero.
func quantityOrZero(list v1.ResourceList, name v1.ResourceName) resource.Quantity {
	if q, ok := list[name]; ok {
		return q
	}
	return resource.Quantity{}
}
