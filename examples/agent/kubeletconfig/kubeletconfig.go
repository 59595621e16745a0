// Package kubeletconfig reads the KubeletConfiguration file the example
// agent runs from (kubelet.config.k8s.io/v1beta1, the types of
// k8s.io/kubelet), so that a node set up for a kubelet can run the agent
// with the same file.
//
// Reading is strict: an unknown field, a wrong kind or apiVersion, or a
// value of the wrong type is an error naming the file and the field.
// Defaults are the kubelet's (SetDefaults_KubeletConfiguration in 1.37)
// with two deliberate differences: containerRuntimeEndpoint stays empty
// (the agent then runs on its simulated runtime and says so) and
// failCgroupV1 defaults to false (nodekit supports cgroup v1). Validate
// checks the values the agent acts on, each error naming its field.
//
// Fields the agent does not act on are accepted but listed in
// Config.Unsupported, one line per field set in the file, for the agent to
// report once at start: nothing is silently ignored.
package kubeletconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kubeletv1beta1 "k8s.io/kubelet/config/v1beta1"
	"k8s.io/utils/cpuset"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"
)

// APIVersion and Kind a configuration file must carry.
const (
	APIVersion = "kubelet.config.k8s.io/v1beta1"
	Kind       = "KubeletConfiguration"
)

// Config is a read configuration: the KubeletConfiguration with defaults
// applied, and what of it the agent does not act on.
type Config struct {
	kubeletv1beta1.KubeletConfiguration
	// Source is the file it was read from ("" for Default).
	Source string
	// Unsupported lists the fields set in the file that the agent does not
	// act on, "field: why", sorted.
	Unsupported []string
}

// supported are the top-level fields the agent acts on (JSON names). Every
// other field set in a file is reported in Config.Unsupported.
var supported = map[string]bool{
	"kind": true, "apiVersion": true,
	"enableServer": true, "staticPodPath": true, "staticPodURL": true, "staticPodURLHeader": true,
	"fileCheckFrequency": true, "httpCheckFrequency": true, "podLogsDir": true,
	"syncFrequency": true, "address": true, "port": true, "readOnlyPort": true,
	"tlsCertFile": true, "tlsPrivateKeyFile": true, "tlsCipherSuites": true, "tlsMinVersion": true,
	"authentication": true, "authorization": true,
	"healthzPort": true, "healthzBindAddress": true,
	"clusterDomain": true, "clusterDNS": true,
	"nodeStatusUpdateFrequency": true, "nodeStatusReportFrequency": true, "nodeLeaseDurationSeconds": true,
	"volumeStatsAggPeriod": true, "cgroupRoot": true, "cgroupsPerQOS": true, "cgroupDriver": true,
	"cpuManagerPolicy": true, "cpuManagerPolicyOptions": true, "cpuManagerReconcilePeriod": true,
	"maxPods": true, "podPidsLimit": true, "cpuCFSQuota": true, "cpuCFSQuotaPeriod": true,
	"evictionHard": true, "evictionSoft": true, "evictionSoftGracePeriod": true,
	"evictionPressureTransitionPeriod": true, "evictionMaxPodGracePeriod": true,
	"evictionMinimumReclaim": true, "mergeDefaultEvictionSettings": true,
	"imageGCHighThresholdPercent": true, "imageGCLowThresholdPercent": true, "imageMinimumGCAge": true, "imageMaximumGCAge": true,
	"protectKernelDefaults": true, "failSwapOn": true, "failCgroupV1": true,
	"systemReserved": true, "kubeReserved": true, "reservedSystemCPUs": true, "enforceNodeAllocatable": true,
	"registerNode": true, "registerWithTaints": true, "providerID": true,
	"containerRuntimeEndpoint": true, "runtimeRequestTimeout": true, "crashLoopBackOff": true,
	"logging": true,
}

// Default returns the defaults alone, as for an empty file.
func Default() *Config {
	c := &Config{}
	c.APIVersion, c.Kind = APIVersion, Kind
	setDefaults(&c.KubeletConfiguration)
	return c
}

// Load reads and defaults the configuration file at path (YAML or JSON).
// It does not validate: call Validate.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kubelet configuration: %w", err)
	}
	return Parse(data, path)
}

// Parse is Load for the content of a file; source names it in errors.
func Parse(data []byte, source string) (*Config, error) {
	wrap := func(err error) error { return fmt.Errorf("kubelet configuration %s: %w", source, err) }
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, wrap(errors.New("the file is empty"))
	}
	var set map[string]json.RawMessage
	if err := yaml.Unmarshal(data, &set); err != nil {
		return nil, wrap(err)
	}
	c := &Config{Source: source}
	if err := yaml.UnmarshalStrict(data, &c.KubeletConfiguration); err != nil {
		return nil, wrap(err)
	}
	if c.APIVersion != APIVersion || c.Kind != Kind {
		return nil, wrap(fmt.Errorf("apiVersion %q, kind %q: want apiVersion %q, kind %q", c.APIVersion, c.Kind, APIVersion, Kind))
	}
	for field := range set {
		if !supported[field] {
			c.Unsupported = append(c.Unsupported, field+": "+unsupportedWhy(field))
		}
	}
	slices.Sort(c.Unsupported)
	setDefaults(&c.KubeletConfiguration)
	return c, nil
}

func unsupportedWhy(field string) string {
	switch field {
	case "featureGates":
		return "nodekit has no feature gates; it follows Kubernetes 1.37's defaults"
	case "memoryManagerPolicy", "topologyManagerPolicy", "topologyManagerScope", "topologyManagerPolicyOptions", "reservedMemory":
		return "nodekit has no memory or topology manager"
	case "rotateCertificates", "serverTLSBootstrap":
		return "certificates are not rotated; give tlsCertFile and tlsPrivateKeyFile"
	case "shutdownGracePeriod", "shutdownGracePeriodCriticalPods", "shutdownGracePeriodByPodPriority":
		return "graceful node shutdown is not implemented"
	case "containerLogMaxSize", "containerLogMaxFiles", "containerLogMaxWorkers", "containerLogMonitorInterval":
		return "container logs are not rotated"
	}
	return "not acted on by the agent"
}

// setDefaults applies the kubelet's defaults to the fields that have none.
func setDefaults(c *kubeletv1beta1.KubeletConfiguration) {
	dur := func(d *metav1.Duration, v time.Duration) {
		if d.Duration == 0 {
			d.Duration = v
		}
	}
	if c.EnableServer == nil {
		c.EnableServer = ptr.To(true)
	}
	dur(&c.SyncFrequency, time.Minute)
	dur(&c.FileCheckFrequency, 20*time.Second)
	dur(&c.HTTPCheckFrequency, 20*time.Second)
	if c.Address == "" {
		c.Address = "0.0.0.0"
	}
	if c.Port == 0 {
		c.Port = 10250
	}
	if c.Authentication.Anonymous.Enabled == nil {
		c.Authentication.Anonymous.Enabled = ptr.To(false)
	}
	if c.Authentication.Webhook.Enabled == nil {
		c.Authentication.Webhook.Enabled = ptr.To(true)
	}
	dur(&c.Authentication.Webhook.CacheTTL, 2*time.Minute)
	if c.Authorization.Mode == "" {
		c.Authorization.Mode = kubeletv1beta1.KubeletAuthorizationModeWebhook
	}
	dur(&c.Authorization.Webhook.CacheAuthorizedTTL, 5*time.Minute)
	dur(&c.Authorization.Webhook.CacheUnauthorizedTTL, 30*time.Second)
	if c.HealthzPort == nil {
		c.HealthzPort = ptr.To[int32](10248)
	}
	if c.HealthzBindAddress == "" {
		c.HealthzBindAddress = "127.0.0.1"
	}
	if c.NodeStatusReportFrequency.Duration == 0 {
		c.NodeStatusReportFrequency.Duration = 5 * time.Minute
		if c.NodeStatusUpdateFrequency.Duration != 0 {
			c.NodeStatusReportFrequency = c.NodeStatusUpdateFrequency
		}
	}
	dur(&c.NodeStatusUpdateFrequency, 10*time.Second)
	if c.NodeLeaseDurationSeconds == 0 {
		c.NodeLeaseDurationSeconds = 40
	}
	dur(&c.VolumeStatsAggPeriod, time.Minute)
	dur(&c.ImageMinimumGCAge, 2*time.Minute)
	if c.ImageGCHighThresholdPercent == nil {
		c.ImageGCHighThresholdPercent = ptr.To[int32](85)
	}
	if c.ImageGCLowThresholdPercent == nil {
		c.ImageGCLowThresholdPercent = ptr.To[int32](80)
	}
	if c.CgroupsPerQOS == nil {
		c.CgroupsPerQOS = ptr.To(true)
	}
	if c.CgroupDriver == "" {
		c.CgroupDriver = "cgroupfs"
	}
	if c.CPUManagerPolicy == "" {
		c.CPUManagerPolicy = "none"
	}
	dur(&c.CPUManagerReconcilePeriod, 10*time.Second)
	dur(&c.RuntimeRequestTimeout, 2*time.Minute)
	if c.MaxPods == 0 {
		c.MaxPods = 110
	}
	if c.PodPidsLimit == nil || *c.PodPidsLimit < 0 {
		c.PodPidsLimit = ptr.To[int64](-1)
	}
	if c.CPUCFSQuota == nil {
		c.CPUCFSQuota = ptr.To(true)
	}
	if c.CPUCFSQuotaPeriod == nil {
		c.CPUCFSQuotaPeriod = &metav1.Duration{Duration: 100 * time.Millisecond}
	}
	dur(&c.EvictionPressureTransitionPeriod, 5*time.Minute)
	if c.MergeDefaultEvictionSettings == nil {
		c.MergeDefaultEvictionSettings = ptr.To(false)
	}
	if c.FailSwapOn == nil {
		c.FailSwapOn = ptr.To(true)
	}
	if c.FailCgroupV1 == nil {
		c.FailCgroupV1 = ptr.To(false)
	}
	if c.EnforceNodeAllocatable == nil {
		c.EnforceNodeAllocatable = []string{"pods"}
	}
	if c.RegisterNode == nil {
		c.RegisterNode = ptr.To(true)
	}
	if c.PodLogsDir == "" {
		c.PodLogsDir = "/var/log/pods"
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
}

// tlsVersions are the names tlsMinVersion accepts.
var tlsVersions = []string{"VersionTLS12", "VersionTLS13"}

// Validate checks the values the agent acts on; the error lists every
// problem, each naming its field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", field, fmt.Sprintf(format, args...)))
	}
	k := &c.KubeletConfiguration
	for name, d := range map[string]metav1.Duration{
		"syncFrequency": k.SyncFrequency, "fileCheckFrequency": k.FileCheckFrequency, "httpCheckFrequency": k.HTTPCheckFrequency,
		"nodeStatusUpdateFrequency": k.NodeStatusUpdateFrequency, "nodeStatusReportFrequency": k.NodeStatusReportFrequency,
		"volumeStatsAggPeriod": k.VolumeStatsAggPeriod, "cpuManagerReconcilePeriod": k.CPUManagerReconcilePeriod,
		"runtimeRequestTimeout": k.RuntimeRequestTimeout, "evictionPressureTransitionPeriod": k.EvictionPressureTransitionPeriod,
	} {
		if d.Duration < 0 {
			bad(name, "%s must not be negative", d.Duration)
		}
	}
	for name, port := range map[string]int32{"port": k.Port, "readOnlyPort": k.ReadOnlyPort, "healthzPort": ptr.Deref(k.HealthzPort, 0)} {
		if port < 0 || port > 65535 {
			bad(name, "%d is not a port (0-65535)", port)
		}
	}
	if k.MaxPods < 0 {
		bad("maxPods", "%d must not be negative", k.MaxPods)
	}
	if k.NodeLeaseDurationSeconds <= 0 {
		bad("nodeLeaseDurationSeconds", "%d must be positive", k.NodeLeaseDurationSeconds)
	}
	high, low := ptr.Deref(k.ImageGCHighThresholdPercent, 85), ptr.Deref(k.ImageGCLowThresholdPercent, 80)
	if high < 0 || high > 100 {
		bad("imageGCHighThresholdPercent", "%d must be between 0 and 100, inclusive", high)
	}
	if low < 0 || low > 100 {
		bad("imageGCLowThresholdPercent", "%d must be between 0 and 100, inclusive", low)
	}
	if low >= high {
		bad("imageGCLowThresholdPercent", "%d must be less than imageGCHighThresholdPercent %d", low, high)
	}
	if k.ImageMinimumGCAge.Duration < 0 {
		bad("imageMinimumGCAge", "%s must not be negative", k.ImageMinimumGCAge.Duration)
	}
	if k.ImageMaximumGCAge.Duration < 0 {
		bad("imageMaximumGCAge", "%s must not be negative", k.ImageMaximumGCAge.Duration)
	} else if k.ImageMaximumGCAge.Duration > 0 && k.ImageMaximumGCAge.Duration <= k.ImageMinimumGCAge.Duration {
		bad("imageMaximumGCAge", "%s must be greater than imageMinimumGCAge %s", k.ImageMaximumGCAge.Duration, k.ImageMinimumGCAge.Duration)
	}
	if k.EvictionMaxPodGracePeriod < 0 {
		bad("evictionMaxPodGracePeriod", "%d must not be negative", k.EvictionMaxPodGracePeriod)
	}
	if k.CgroupDriver != "cgroupfs" && k.CgroupDriver != "systemd" {
		bad("cgroupDriver", "%q: want cgroupfs or systemd", k.CgroupDriver)
	}
	if k.CPUManagerPolicy != "none" && k.CPUManagerPolicy != "static" {
		bad("cpuManagerPolicy", "%q: want none or static", k.CPUManagerPolicy)
	}
	if k.ReservedSystemCPUs != "" {
		if _, err := cpuset.Parse(k.ReservedSystemCPUs); err != nil {
			bad("reservedSystemCPUs", "%q: %v", k.ReservedSystemCPUs, err)
		}
	}
	for field, rl := range map[string]map[string]string{"kubeReserved": k.KubeReserved, "systemReserved": k.SystemReserved} {
		for name, v := range rl {
			q, err := resource.ParseQuantity(v)
			if err != nil {
				bad(field+"."+name, "%q: %v", v, err)
			} else if q.Sign() < 0 {
				bad(field+"."+name, "%q must not be negative", v)
			}
		}
	}
	for i, v := range k.EnforceNodeAllocatable {
		switch v {
		case "pods", "system-reserved", "kube-reserved", "system-reserved-compressible", "kube-reserved-compressible", "none":
		default:
			bad(fmt.Sprintf("enforceNodeAllocatable[%d]", i), "%q: want pods, system-reserved, kube-reserved, their -compressible forms or none", v)
		}
	}
	if k.TLSMinVersion != "" && !slices.Contains(tlsVersions, k.TLSMinVersion) {
		bad("tlsMinVersion", "%q: want one of %s (TLS below 1.2 is refused)", k.TLSMinVersion, strings.Join(tlsVersions, ", "))
	}
	if (k.TLSCertFile == "") != (k.TLSPrivateKeyFile == "") {
		bad("tlsCertFile", "tlsCertFile and tlsPrivateKeyFile go together")
	}
	switch k.Authorization.Mode {
	case kubeletv1beta1.KubeletAuthorizationModeWebhook, kubeletv1beta1.KubeletAuthorizationModeAlwaysAllow:
	default:
		bad("authorization.mode", "%q: want Webhook or AlwaysAllow", k.Authorization.Mode)
	}
	if k.StaticPodPath != "" && k.StaticPodURL != "" && k.StaticPodPath == k.StaticPodURL {
		bad("staticPodURL", "is the same as staticPodPath")
	}
	if k.ContainerRuntimeEndpoint != "" && !strings.HasPrefix(k.ContainerRuntimeEndpoint, "unix://") && !strings.HasPrefix(k.ContainerRuntimeEndpoint, "/") {
		bad("containerRuntimeEndpoint", "%q: want unix:///path/to/socket", k.ContainerRuntimeEndpoint)
	}
	if err := errors.Join(errs...); err != nil {
		src := c.Source
		if src == "" {
			src = "(defaults)"
		}
		return fmt.Errorf("kubelet configuration %s is invalid:\n%w", src, err)
	}
	return nil
}
