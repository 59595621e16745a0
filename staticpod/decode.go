package staticpod

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/nodekit/nodekit/core"
)

// MaxManifestSize is the largest manifest a source reads, as the
// kubelet's limit: 10 MiB.
const MaxManifestSize = 10 << 20

// ErrInvalidManifest is the class of every error about a manifest's
// content: malformed, of another kind, or a pod that may not run as a
// static pod. It wraps core.ErrInvalid.
var ErrInvalidManifest = fmt.Errorf("invalid manifest: %w", core.ErrInvalid)

// DecodeOptions say where a manifest comes from, for the defaults a
// static pod gets.
type DecodeOptions struct {
	// NodeName is the node's name: the pods' spec.nodeName and the suffix
	// of their names. Required.
	NodeName string
	// Source is core.SourceFile or core.SourceHTTP.
	Source string
	// Location is the file's path or the URL: part of each pod's UID and
	// of every error.
	Location string
}

// Decode reads the pods of one manifest (YAML or JSON; a Pod, or from an
// HTTP source also a PodList), checks that each may run as a static pod,
// and gives it the kubelet's static pod defaults (see Defaults). Errors
// wrap ErrInvalidManifest and name the location and the field.
func Decode(data []byte, opts DecodeOptions) ([]*v1.Pod, error) {
	if len(data) > MaxManifestSize {
		return nil, fmt.Errorf("%s: %w: %d bytes, more than %d", opts.Location, ErrInvalidManifest, len(data), MaxManifestSize)
	}
	if opts.NodeName == "" {
		return nil, fmt.Errorf("staticpod: decode %s: NodeName is required: %w", opts.Location, core.ErrInvalid)
	}
	jsonData := bytes.TrimSpace(data)
	if !bytes.HasPrefix(jsonData, []byte("{")) || !json.Valid(jsonData) {
		// YAML (JSON goes straight through, without the YAML parser's
		// cost on large manifests).
		var err error
		if jsonData, err = utilyaml.ToJSON(data); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", opts.Location, ErrInvalidManifest, err)
		}
		jsonData = bytes.TrimSpace(jsonData)
	}
	if len(jsonData) == 0 || string(jsonData) == "null" {
		return nil, fmt.Errorf("%s: %w: empty", opts.Location, ErrInvalidManifest)
	}
	var meta metav1.TypeMeta
	if err := json.Unmarshal(jsonData, &meta); err != nil {
		return nil, fmt.Errorf("%s: %w: %w", opts.Location, ErrInvalidManifest, err)
	}
	if meta.APIVersion != "v1" && meta.APIVersion != "" {
		return nil, fmt.Errorf("%s: %w: apiVersion %q, want v1", opts.Location, ErrInvalidManifest, meta.APIVersion)
	}
	var pods []*v1.Pod
	switch {
	case meta.Kind == "Pod":
		pod := &v1.Pod{}
		if err := json.Unmarshal(jsonData, pod); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", opts.Location, ErrInvalidManifest, locate(jsonData, "", err))
		}
		pods = append(pods, pod)
	case meta.Kind == "PodList" && opts.Source != core.SourceFile:
		list := &v1.PodList{}
		if err := json.Unmarshal(jsonData, list); err != nil {
			return nil, fmt.Errorf("%s: %w: %w", opts.Location, ErrInvalidManifest, locate(jsonData, "items", err))
		}
		for i := range list.Items {
			pods = append(pods, &list.Items[i])
		}
	default:
		want := "Pod"
		if opts.Source != core.SourceFile {
			want = "Pod or PodList"
		}
		return nil, fmt.Errorf("%s: %w: kind %q, want %s", opts.Location, ErrInvalidManifest, meta.Kind, want)
	}
	var errs []error
	for i, pod := range pods {
		where := opts.Location
		if meta.Kind == "PodList" {
			where = fmt.Sprintf("%s: items[%d]", opts.Location, i)
		}
		if err := Validate(pod); err != nil {
			errs = append(errs, fmt.Errorf("%s: pod %q: %w: %w", where, pod.Name, ErrInvalidManifest, err))
			continue
		}
		if err := Defaults(pod, opts); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", where, err))
			continue
		}
		// The name the pod runs under has the node's name in it, and must
		// still be a valid name.
		for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
			errs = append(errs, fmt.Errorf("%s: pod %q: %w: %w", where, pod.Name, ErrInvalidManifest,
				field.Invalid(field.NewPath("metadata", "name"), pod.Name, msg+" (with the node's name appended)")))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return pods, nil
}

// locate names the field of a resource quantity that failed to decode
// (encoding/json does not say which); other errors are returned as they
// are. items is "items" for a PodList.
func locate(data []byte, items string, err error) error {
	var doc map[string]any
	if json.Unmarshal(data, &doc) != nil {
		return err
	}
	pods := []map[string]any{doc}
	paths := []*field.Path{nil}
	if items != "" {
		list, _ := doc[items].([]any)
		pods, paths = nil, nil
		for i, it := range list {
			if m, ok := it.(map[string]any); ok {
				pods = append(pods, m)
				paths = append(paths, field.NewPath(items).Index(i))
			}
		}
	}
	child := func(p *field.Path, name string) *field.Path {
		if p == nil {
			return field.NewPath(name)
		}
		return p.Child(name)
	}
	var errs field.ErrorList
	checkList := func(p *field.Path, v any) {
		m, _ := v.(map[string]any)
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s := fmt.Sprint(m[k])
			if _, qerr := resource.ParseQuantity(s); qerr != nil {
				errs = append(errs, field.Invalid(p.Key(k), s, qerr.Error()))
			}
		}
	}
	checkReq := func(p *field.Path, v any) {
		r, _ := v.(map[string]any)
		checkList(p.Child("requests"), r["requests"])
		checkList(p.Child("limits"), r["limits"])
	}
	for i, pod := range pods {
		spec, _ := pod["spec"].(map[string]any)
		sp := child(paths[i], "spec")
		checkList(sp.Child("overhead"), spec["overhead"])
		checkReq(sp.Child("resources"), spec["resources"])
		for _, kind := range []string{"initContainers", "containers", "ephemeralContainers"} {
			cs, _ := spec[kind].([]any)
			for j, c := range cs {
				cm, _ := c.(map[string]any)
				checkReq(sp.Child(kind).Index(j).Child("resources"), cm["resources"])
			}
		}
	}
	if len(errs) > 0 {
		return errs.ToAggregate()
	}
	return err
}

// Defaults gives a decoded pod what the kubelet gives a static pod: a UID
// derived from its content, the node and the location unless it has one
// (so an edited manifest is a new pod); the name <name>-<node>; namespace
// default when empty; spec.nodeName; the kubernetes.io/config.hash
// annotation; a toleration of every NoExecute taint (file pods); phase
// Pending; and the API server's defaults for the fields the node acts on
// (restart policy, grace period, DNS policy, image pull policy, probe
// timings, termination message path, port protocols, requests from
// limits).
func Defaults(pod *v1.Pod, opts DecodeOptions) error {
	if pod.UID == "" {
		canonical, err := json.Marshal(pod)
		if err != nil {
			return err
		}
		h := fnv.New128a()
		h.Write(canonical)
		if opts.Source == core.SourceFile {
			fmt.Fprintf(h, "host:%s", opts.NodeName)
			fmt.Fprintf(h, "file:%s", opts.Location)
		} else {
			fmt.Fprintf(h, "url:%s", opts.Location)
		}
		pod.UID = types.UID(hex.EncodeToString(h.Sum(nil)))
	}
	pod.Name = pod.Name + "-" + strings.ToLower(opts.NodeName)
	if pod.Namespace == "" {
		pod.Namespace = metav1.NamespaceDefault
	}
	pod.Spec.NodeName = opts.NodeName
	if pod.Annotations == nil {
		pod.Annotations = map[string]string{}
	}
	pod.Annotations[core.AnnotationConfigHash] = string(pod.UID)
	if opts.Source == core.SourceFile {
		all := v1.Toleration{Operator: v1.TolerationOpExists, Effect: v1.TaintEffectNoExecute}
		found := false
		for _, t := range pod.Spec.Tolerations {
			if t.MatchToleration(&all) {
				found = true
			}
		}
		if !found {
			pod.Spec.Tolerations = append(pod.Spec.Tolerations, all)
		}
	}
	pod.Status = v1.PodStatus{Phase: v1.PodPending}
	apiDefaults(pod)
	return nil
}

// apiDefaults sets the defaults the API server would have set on the
// fields the node reads.
func apiDefaults(pod *v1.Pod) {
	s := &pod.Spec
	if s.RestartPolicy == "" {
		s.RestartPolicy = v1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		g := int64(v1.DefaultTerminationGracePeriodSeconds)
		s.TerminationGracePeriodSeconds = &g
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = v1.DNSClusterFirst
	}
	if s.SchedulerName == "" {
		s.SchedulerName = v1.DefaultSchedulerName
	}
	if s.SecurityContext == nil {
		s.SecurityContext = &v1.PodSecurityContext{}
	}
	if s.EnableServiceLinks == nil {
		t := true
		s.EnableServiceLinks = &t
	}
	for i := range s.InitContainers {
		containerDefaults(&s.InitContainers[i])
	}
	for i := range s.Containers {
		containerDefaults(&s.Containers[i])
	}
	for i := range s.EphemeralContainers {
		c := v1.Container(s.EphemeralContainers[i].EphemeralContainerCommon)
		containerDefaults(&c)
		s.EphemeralContainers[i].EphemeralContainerCommon = v1.EphemeralContainerCommon(c)
	}
}

func containerDefaults(c *v1.Container) {
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = v1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = v1.TerminationMessageReadFile
	}
	if c.ImagePullPolicy == "" {
		c.ImagePullPolicy = v1.PullIfNotPresent
		if tag := imageTag(c.Image); tag == "" || tag == "latest" {
			c.ImagePullPolicy = v1.PullAlways
		}
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = v1.ProtocolTCP
		}
	}
	for name, limit := range c.Resources.Limits {
		if _, ok := c.Resources.Requests[name]; !ok {
			if c.Resources.Requests == nil {
				c.Resources.Requests = v1.ResourceList{}
			}
			c.Resources.Requests[name] = limit.DeepCopy()
		}
	}
	for _, p := range []*v1.Probe{c.LivenessProbe, c.ReadinessProbe, c.StartupProbe} {
		probeDefaults(p)
	}
}

func probeDefaults(p *v1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	if g := p.HTTPGet; g != nil {
		if g.Path == "" {
			g.Path = "/"
		}
		if g.Scheme == "" {
			g.Scheme = v1.URISchemeHTTP
		}
	}
}

// imageTag is the tag of an image reference, "" when it has none (a
// digest is not a tag).
func imageTag(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return "digest"
	}
	slash := strings.LastIndex(image, "/")
	if i := strings.LastIndex(image, ":"); i > slash {
		return image[i+1:]
	}
	return ""
}

// Validate checks that a decoded pod may run as a static pod, before its
// defaults: a DNS-1123 name and namespace, containers with unique DNS-1123
// label names and an image, requests no larger than limits, a known
// restart policy, valid ports, and no reference to an API object a static
// pod may not use (service accounts, secrets, config maps, persistent
// volume claims and the volumes that need them, resource claims). Each
// problem names its field.
func Validate(pod *v1.Pod) error {
	var errs field.ErrorList
	meta := field.NewPath("metadata")
	if pod.Name == "" {
		errs = append(errs, field.Required(meta.Child("name"), "name is needed for the pod"))
	}
	for _, msg := range validation.IsDNS1123Subdomain(pod.Name) {
		if pod.Name != "" {
			errs = append(errs, field.Invalid(meta.Child("name"), pod.Name, msg))
		}
	}
	if pod.Namespace != "" {
		for _, msg := range validation.IsDNS1123Label(pod.Namespace) {
			errs = append(errs, field.Invalid(meta.Child("namespace"), pod.Namespace, msg))
		}
	}
	spec := field.NewPath("spec")
	if len(pod.Spec.Containers) == 0 {
		errs = append(errs, field.Required(spec.Child("containers"), "a pod needs at least one container"))
	}
	switch pod.Spec.RestartPolicy {
	case "", v1.RestartPolicyAlways, v1.RestartPolicyOnFailure, v1.RestartPolicyNever:
	default:
		errs = append(errs, field.NotSupported(spec.Child("restartPolicy"), pod.Spec.RestartPolicy,
			[]string{string(v1.RestartPolicyAlways), string(v1.RestartPolicyOnFailure), string(v1.RestartPolicyNever)}))
	}
	names := map[string]bool{}
	checkContainers := func(path *field.Path, cs []v1.Container) {
		for i := range cs {
			errs = append(errs, validateContainer(path.Index(i), &cs[i], names)...)
		}
	}
	checkContainers(spec.Child("initContainers"), pod.Spec.InitContainers)
	checkContainers(spec.Child("containers"), pod.Spec.Containers)
	for i := range pod.Spec.EphemeralContainers {
		c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		errs = append(errs, validateContainer(spec.Child("ephemeralContainers").Index(i), &c, names)...)
	}
	vols := map[string]bool{}
	for i, v := range pod.Spec.Volumes {
		p := spec.Child("volumes").Index(i)
		for _, msg := range validation.IsDNS1123Label(v.Name) {
			errs = append(errs, field.Invalid(p.Child("name"), v.Name, msg))
		}
		if vols[v.Name] {
			errs = append(errs, field.Duplicate(p.Child("name"), v.Name))
		}
		vols[v.Name] = true
	}
	errs = append(errs, apiReferences(pod)...)
	return errs.ToAggregate()
}

func validateContainer(path *field.Path, c *v1.Container, names map[string]bool) field.ErrorList {
	var errs field.ErrorList
	if c.Name == "" {
		errs = append(errs, field.Required(path.Child("name"), ""))
	}
	for _, msg := range validation.IsDNS1123Label(c.Name) {
		if c.Name != "" {
			errs = append(errs, field.Invalid(path.Child("name"), c.Name, msg))
		}
	}
	if names[c.Name] && c.Name != "" {
		errs = append(errs, field.Duplicate(path.Child("name"), c.Name))
	}
	names[c.Name] = true
	if strings.TrimSpace(c.Image) == "" {
		errs = append(errs, field.Required(path.Child("image"), ""))
	}
	for name, limit := range c.Resources.Limits {
		if req, ok := c.Resources.Requests[name]; ok && req.Cmp(limit) > 0 {
			errs = append(errs, field.Invalid(path.Child("resources", "requests").Key(string(name)), req.String(),
				fmt.Sprintf("must be less than or equal to %s limit of %s", name, limit.String())))
		}
	}
	for _, rl := range []v1.ResourceList{c.Resources.Requests, c.Resources.Limits} {
		for name, q := range rl {
			if q.Sign() < 0 {
				errs = append(errs, field.Invalid(path.Child("resources").Key(string(name)), q.String(), "must be greater than or equal to 0"))
			}
		}
	}
	for i, p := range c.Ports {
		pp := path.Child("ports").Index(i)
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			errs = append(errs, field.Invalid(pp.Child("containerPort"), p.ContainerPort, "must be between 1 and 65535, inclusive"))
		}
		if p.HostPort < 0 || p.HostPort > 65535 {
			errs = append(errs, field.Invalid(pp.Child("hostPort"), p.HostPort, "must be between 0 and 65535, inclusive"))
		}
	}
	return errs
}

// apiReferences lists the references to API objects that a static pod
// may not make, as the kubelet refuses them: it has no apiserver to read
// them from (or will not let a static pod read them).
func apiReferences(pod *v1.Pod) field.ErrorList {
	var errs field.ErrorList
	spec := field.NewPath("spec")
	forbid := func(p *field.Path, what string) {
		errs = append(errs, field.Forbidden(p, "static pods may not reference "+what))
	}
	if pod.Spec.ServiceAccountName != "" {
		forbid(spec.Child("serviceAccountName"), "serviceaccounts")
	}
	for i := range pod.Spec.ImagePullSecrets {
		forbid(spec.Child("imagePullSecrets").Index(i), "secrets")
	}
	for i := range pod.Spec.ResourceClaims {
		forbid(spec.Child("resourceClaims").Index(i), "resourceclaims")
	}
	visit := func(path *field.Path, c *v1.Container) {
		for i, e := range c.Env {
			if e.ValueFrom == nil {
				continue
			}
			if e.ValueFrom.SecretKeyRef != nil {
				forbid(path.Child("env").Index(i).Child("valueFrom", "secretKeyRef"), "secrets")
			}
			if e.ValueFrom.ConfigMapKeyRef != nil {
				forbid(path.Child("env").Index(i).Child("valueFrom", "configMapKeyRef"), "configmaps")
			}
		}
		for i, e := range c.EnvFrom {
			if e.SecretRef != nil {
				forbid(path.Child("envFrom").Index(i).Child("secretRef"), "secrets")
			}
			if e.ConfigMapRef != nil {
				forbid(path.Child("envFrom").Index(i).Child("configMapRef"), "configmaps")
			}
		}
	}
	for i := range pod.Spec.InitContainers {
		visit(spec.Child("initContainers").Index(i), &pod.Spec.InitContainers[i])
	}
	for i := range pod.Spec.Containers {
		visit(spec.Child("containers").Index(i), &pod.Spec.Containers[i])
	}
	for i := range pod.Spec.EphemeralContainers {
		c := v1.Container(pod.Spec.EphemeralContainers[i].EphemeralContainerCommon)
		visit(spec.Child("ephemeralContainers").Index(i), &c)
	}
	for i, v := range pod.Spec.Volumes {
		p := spec.Child("volumes").Index(i)
		switch {
		case v.ConfigMap != nil:
			forbid(p.Child("configMap"), "configmaps (via configmap volumes)")
		case v.Secret != nil:
			forbid(p.Child("secret"), "secrets (via secret volumes)")
		case v.CSI != nil:
			forbid(p.Child("csi"), "csidrivers (via CSI volumes)")
		case v.Glusterfs != nil:
			forbid(p.Child("glusterfs"), "endpoints (via glusterFS volumes)")
		case v.PersistentVolumeClaim != nil:
			forbid(p.Child("persistentVolumeClaim"), "persistentvolumeclaims")
		case v.Ephemeral != nil:
			forbid(p.Child("ephemeral"), "persistentvolumeclaims (via ephemeral volumes)")
		case v.AzureFile != nil:
			forbid(p.Child("azureFile"), "secrets (via azureFile volumes)")
		case v.CephFS != nil && v.CephFS.SecretRef != nil, v.RBD != nil && v.RBD.SecretRef != nil,
			v.ISCSI != nil && v.ISCSI.SecretRef != nil, v.FlexVolume != nil && v.FlexVolume.SecretRef != nil,
			v.ScaleIO != nil && v.ScaleIO.SecretRef != nil, v.StorageOS != nil && v.StorageOS.SecretRef != nil,
			v.Cinder != nil && v.Cinder.SecretRef != nil:
			forbid(p, "secrets (via the volume's secretRef)")
		case v.Projected != nil:
			for j, s := range v.Projected.Sources {
				sp := p.Child("projected", "sources").Index(j)
				switch {
				case s.ConfigMap != nil:
					forbid(sp.Child("configMap"), "configmaps (via projected volumes)")
				case s.Secret != nil:
					forbid(sp.Child("secret"), "secrets (via projected volumes)")
				case s.ServiceAccountToken != nil:
					forbid(sp.Child("serviceAccountToken"), "serviceaccounts (via projected volumes)")
				case s.ClusterTrustBundle != nil:
					forbid(sp.Child("clusterTrustBundle"), "clustertrustbundles")
				case s.PodCertificate != nil:
					forbid(sp.Child("podCertificate"), "podcertificates")
				}
			}
		}
	}
	return errs
}
