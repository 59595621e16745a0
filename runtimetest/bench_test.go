package runtimetest_test

import (
	"fmt"
	"testing"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
	"github.com/nodekit/nodekit/runtimetest"
)

// kubeletContainer has the labels and annotations the kubelet sets.
func kubeletContainer(pod *runtimeapi.PodSandboxConfig, name string) *runtimeapi.ContainerConfig {
	cfg := containerConfig(name, "sleep", "infinity")
	md := pod.GetMetadata()
	cfg.Labels = map[string]string{
		core.LabelPodName: md.Name, core.LabelPodNamespace: md.Namespace, core.LabelPodUID: md.Uid, core.LabelContainerName: name,
	}
	cfg.Annotations = map[string]string{
		core.AnnotationContainerHash:                     "1f2e3d4c",
		core.AnnotationContainerRestartCount:             "0",
		core.AnnotationContainerTerminationMessagePath:   "/dev/termination-log",
		core.AnnotationContainerTerminationMessagePolicy: "File",
		core.AnnotationPodTerminationGracePeriod:         "30",
	}
	return cfg
}

// node fills a runtime with pods of four containers each, three running.
func node(b *testing.B, pods int) (*env, []string) {
	e := newEnv(b, runtimetest.Config{})
	var sandboxes []string
	for p := range pods {
		sb := sandboxConfig(fmt.Sprint("pod-", p), false)
		sbID, err := e.rt.RunPodSandbox(e.ctx, sb, "")
		if err != nil {
			b.Fatal(err)
		}
		sandboxes = append(sandboxes, sbID)
		for c := range 4 {
			id := e.create(sbID, sb, kubeletContainer(sb, fmt.Sprint("c", c)))
			if c > 0 {
				if err := e.rt.StartContainer(e.ctx, id); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	return e, sandboxes
}

// A PLEG relist of a node with 10,000 containers.
func BenchmarkListContainers10k(b *testing.B) {
	e, _ := node(b, 2500)
	b.ReportAllocs()
	for b.Loop() {
		list, err := e.rt.ListContainers(e.ctx, nil)
		if err != nil || len(list) != 10000 {
			b.Fatalf("%d containers, %v", len(list), err)
		}
	}
}

func BenchmarkListPodSandbox2500(b *testing.B) {
	e, _ := node(b, 2500)
	b.ReportAllocs()
	for b.Loop() {
		if list, err := e.rt.ListPodSandbox(e.ctx, nil); err != nil || len(list) != 2500 {
			b.Fatalf("%d sandboxes, %v", len(list), err)
		}
	}
}

func BenchmarkContainerStatus10k(b *testing.B) {
	e, _ := node(b, 2500)
	list, _ := e.rt.ListContainers(e.ctx, nil)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := e.rt.ContainerStatus(e.ctx, list[i%len(list)].Id, false); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// Creating and starting a container, on a node that grows as it runs.
func BenchmarkCreateStart(b *testing.B) {
	e, sandboxes := node(b, 1)
	sb := sandboxConfig("pod-0", false)
	cfg := kubeletContainer(sb, "app") // the runtime keeps copies: reuse it
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		cfg.Metadata.Attempt = uint32(i)
		id, err := e.rt.CreateContainer(e.ctx, sandboxes[0], cfg, sb)
		if err != nil {
			b.Fatal(err)
		}
		if err := e.rt.StartContainer(e.ctx, id); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
