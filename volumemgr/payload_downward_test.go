package volumemgr_test

import (
	"errors"
	"testing"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/volumemgr"
)

func downwardTestPod() *v1.Pod {
	return &v1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace: "ns", Name: "web", UID: "uid-1",
			Labels: map[string]string{"key2": "value2", "key1": "value1"},
			Annotations: map[string]string{
				"a1":             "value1",
				"multiline":      "c\nb\na",
				"example.com/q":  `say "hi"`,
				"example.com/ü":  "ünïcode\t",
				"example.com/ok": "",
			},
		},
		Spec: v1.PodSpec{
			InitContainers: []v1.Container{{Name: "init"}},
			Containers: []v1.Container{{
				Name: "app",
				Resources: v1.ResourceRequirements{
					Requests: v1.ResourceList{
						v1.ResourceCPU:                   resource.MustParse("250m"),
						v1.ResourceMemory:                resource.MustParse("1536Ki"),
						v1.ResourceEphemeralStorage:      resource.MustParse("1Gi"),
						v1.ResourceName("hugepages-2Mi"): resource.MustParse("4Mi"),
					},
					Limits: v1.ResourceList{
						v1.ResourceCPU:                   resource.MustParse("1500m"),
						v1.ResourceMemory:                resource.MustParse("0"),
						v1.ResourceName("hugepages-2Mi"): resource.MustParse("4Mi"),
					},
				},
			}},
		},
	}
}

func downwardTestAllocatable() v1.ResourceList {
	return v1.ResourceList{
		v1.ResourceCPU:                   resource.MustParse("4"),
		v1.ResourceMemory:                resource.MustParse("8Gi"),
		v1.ResourceEphemeralStorage:      resource.MustParse("100Gi"),
		v1.ResourceName("hugepages-2Mi"): resource.MustParse("1Gi"),
	}
}

func downwardFieldItem(path, field string) v1.DownwardAPIVolumeFile {
	return v1.DownwardAPIVolumeFile{Path: path, FieldRef: &v1.ObjectFieldSelector{APIVersion: "v1", FieldPath: field}}
}

func downwardResourceItem(path, container, res, divisor string) v1.DownwardAPIVolumeFile {
	sel := &v1.ResourceFieldSelector{ContainerName: container, Resource: res}
	if divisor != "" {
		sel.Divisor = resource.MustParse(divisor)
	}
	return v1.DownwardAPIVolumeFile{Path: path, ResourceFieldRef: sel}
}

func TestDownwardAPIPayload(t *testing.T) {
	cases := []struct {
		name  string
		src   v1.DownwardAPIVolumeSource
		alloc v1.ResourceList
		want  payloadWant
	}{{
		name: "labels: sorted key=\"value\" lines, no final newline",
		src:  v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{downwardFieldItem("labels", "metadata.labels")}},
		want: payloadWant{payload: `labels 0644 user=- "key1=\"value1\"\nkey2=\"value2\""` + "\n"},
	}, {
		name: "annotations: values quoted with escapes",
		src:  v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{downwardFieldItem("annotations", "metadata.annotations")}},
		want: payloadWant{payload: `annotations 0644 user=- "a1=\"value1\"\nexample.com/ok=\"\"\nexample.com/q=\"say \\\"hi\\\"\"\nexample.com/ü=\"ünïcode\\t\"\nmultiline=\"c\\nb\\na\""` + "\n"},
	}, {
		name: "name, namespace, uid",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("name", "metadata.name"), downwardFieldItem("namespace", "metadata.namespace"), downwardFieldItem("uid", "metadata.uid"),
		}},
		want: payloadWant{payload: "name 0644 user=- \"web\"\nnamespace 0644 user=- \"ns\"\nuid 0644 user=- \"uid-1\"\n"},
	}, {
		name: "one label and one annotation, and a missing one",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("k1", "metadata.labels['key1']"),
			downwardFieldItem("q", "metadata.annotations['example.com/q']"),
			downwardFieldItem("none", "metadata.labels['absent']"),
		}},
		want: payloadWant{payload: "k1 0644 user=- \"value1\"\nnone 0644 user=- \"\"\nq 0644 user=- \"say \\\"hi\\\"\"\n"},
	}, {
		name: "nested and unclean paths",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("these/are/my/labels", "metadata.labels"),
			downwardFieldItem("this//name", "metadata.name"),
		}},
		want: payloadWant{payload: "these/are/my/labels 0644 user=- \"key1=\\\"value1\\\"\\nkey2=\\\"value2\\\"\"\nthis/name 0644 user=- \"web\"\n"},
	}, {
		name: "defaultMode, item mode, defaultUser, item user",
		src: v1.DownwardAPIVolumeSource{DefaultMode: ptr.To[int32](0o600), DefaultUser: ptr.To[int64](5), Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("a", "metadata.name"),
			{Path: "b", FieldRef: &v1.ObjectFieldSelector{FieldPath: "metadata.name"}, Mode: ptr.To[int32](0o400), User: ptr.To[int64](6)},
		}},
		want: payloadWant{payload: "a 0600 user=5 \"web\"\nb 0400 user=6 \"web\"\n"},
	}, {
		name:  "cpu: millicores with divisor 1m, cores rounded up",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("limit-m", "app", "limits.cpu", "1m"),
			downwardResourceItem("limit", "app", "limits.cpu", ""),
			downwardResourceItem("request", "app", "requests.cpu", ""),
			downwardResourceItem("request-m", "app", "requests.cpu", "1m"),
		}},
		want: payloadWant{payload: "limit 0644 user=- \"2\"\nlimit-m 0644 user=- \"1500\"\nrequest 0644 user=- \"1\"\nrequest-m 0644 user=- \"250\"\n"},
	}, {
		name:  "memory: a zero limit reads as allocatable; divisors round up",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("limit", "app", "limits.memory", "1Mi"),
			downwardResourceItem("request", "app", "requests.memory", "1Mi"),
			downwardResourceItem("request-bytes", "app", "requests.memory", ""),
		}},
		want: payloadWant{payload: "limit 0644 user=- \"8192\"\nrequest 0644 user=- \"2\"\nrequest-bytes 0644 user=- \"1572864\"\n"},
	}, {
		name:  "ephemeral-storage: an unset limit reads as allocatable",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("limit", "app", "limits.ephemeral-storage", "1Gi"),
			downwardResourceItem("request", "app", "requests.ephemeral-storage", "1Gi"),
		}},
		want: payloadWant{payload: "limit 0644 user=- \"100\"\nrequest 0644 user=- \"1\"\n"},
	}, {
		name:  "hugepages: read as set, never from allocatable",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("limit", "app", "limits.hugepages-2Mi", "1Mi"),
			downwardResourceItem("request", "app", "requests.hugepages-2Mi", "1Mi"),
			downwardResourceItem("init-limit", "init", "limits.hugepages-2Mi", ""),
		}},
		want: payloadWant{payload: "init-limit 0644 user=- \"0\"\nlimit 0644 user=- \"4\"\nrequest 0644 user=- \"4\"\n"},
	}, {
		name:  "an init container's unset limits read as allocatable too",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("cpu", "init", "limits.cpu", ""),
			downwardResourceItem("mem", "init", "requests.memory", ""),
		}},
		want: payloadWant{payload: "cpu 0644 user=- \"4\"\nmem 0644 user=- \"0\"\n"},
	}, {
		name: "without allocatable, a limit the container sets still reads",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("cpu", "app", "limits.cpu", "1m"),
			downwardResourceItem("req", "app", "requests.memory", "1Ki"),
		}},
		want: payloadWant{payload: "cpu 0644 user=- \"1500\"\nreq 0644 user=- \"1536\"\n"},
	}, {
		name: "without allocatable, an unset limit is an error",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("mem", "app", "limits.memory", ""),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0] "mem"`, "allocatable"}},
	}, {
		name:  "an item with no reference is an empty file",
		alloc: downwardTestAllocatable(),
		src:   v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{{Path: "empty"}}},
		want:  payloadWant{payload: "empty 0644 user=- \"\"\n"},
	}, {
		name: "fields for env vars only are unsupported",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("ok", "metadata.name"),
			downwardFieldItem("node", "spec.nodeName"),
			downwardFieldItem("ip", "status.podIP"),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[1] "node"`, `"spec.nodeName"`, `items[2] "ip"`, `"status.podIP"`, "unsupported"}},
	}, {
		name: "bad subscripts",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("a", "metadata.labels['not a key']"),
			downwardFieldItem("b", "metadata.name['x']"),
			downwardFieldItem("c", "metadata.annotations['']"),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0] "a"`, "invalid key", `items[1] "b"`, "no subscript", `items[2] "c"`}},
	}, {
		name:  "unknown container and resource",
		alloc: downwardTestAllocatable(),
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardResourceItem("a", "nope", "limits.cpu", ""),
			downwardResourceItem("b", "app", "limits.nvidia.com/gpu", ""),
			downwardResourceItem("c", "app", "cpu", ""),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0] "a"`, `"nope"`, `items[1] "b"`, `items[2] "c"`, "unsupported resource"}},
	}, {
		name:  "a negative divisor",
		alloc: downwardTestAllocatable(),
		src:   v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{downwardResourceItem("a", "app", "limits.memory", "-1")}},
		want:  payloadWant{class: core.ErrInvalid, msg: []string{"divisor"}},
	}, {
		name: "bad paths",
		src: v1.DownwardAPIVolumeSource{Items: []v1.DownwardAPIVolumeFile{
			downwardFieldItem("/abs", "metadata.name"),
			downwardFieldItem("..hidden", "metadata.name"),
		}},
		want: payloadWant{class: core.ErrInvalid, msg: []string{`items[0] "/abs"`, `items[1] "..hidden"`}},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pod := downwardTestPod()
			got, err := volumemgr.DownwardAPIPayload(&tc.src, pod, tc.alloc)
			tc.want.check(t, got, err)
			if pod.Spec.Containers[0].Resources.Limits.Memory().String() != "0" || len(pod.Spec.Containers[0].Resources.Limits) != 3 {
				t.Error("the pod's limits were modified")
			}
		})
	}
}

func TestDownwardAPIPayloadNilArguments(t *testing.T) {
	if _, err := volumemgr.DownwardAPIPayload(nil, downwardTestPod(), nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("nil source: got %v, want core.ErrInvalid", err)
	}
	if _, err := volumemgr.DownwardAPIPayload(&v1.DownwardAPIVolumeSource{}, nil, nil); !errors.Is(err, core.ErrInvalid) {
		t.Errorf("nil pod: got %v, want core.ErrInvalid", err)
	}
}
