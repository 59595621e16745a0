package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	v1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/nodekit/nodekit/pleg"
	"github.com/nodekit/nodekit/statusmgr"
	"github.com/nodekit/nodekit/syncloop"
)

// printStatuses prints a line for each pod whose status changed, until
// ctx ends: at every PLEG event and every 250 ms, each pod's status is
// generated (statusmgr.Generate) from its spec, its runtime status in the
// PLEG's cache, the containers the driver holds back and its worker's
// state. A pod is followed until its worker is done with it.
func printStatuses(ctx context.Context, out io.Writer, p *pleg.PLEG, driver *syncloop.Driver, workers *syncloop.Workers, loop *syncloop.Loop) {
	events := p.Watch()
	defer events.Close()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	pods := map[types.UID]*v1.Pod{}
	last := map[types.UID]*v1.PodStatus{}
	lines := map[types.UID]string{}
	for {
		for _, pod := range loop.Pods() {
			pods[pod.UID] = pod
		}
		for uid, pod := range pods {
			_, wanted := loop.Pod(uid)
			state, ok := workers.State(uid)
			if !ok && wanted {
				continue // its worker is not there yet
			}
			if !ok {
				state = syncloop.Terminated // and forgotten
			}
			rt, _ := p.Cache().Get(uid)
			in := statusmgr.Input{Pod: pod, Previous: last[uid], Runtime: rt, Now: time.Now(),
				Terminal: state == syncloop.Terminated, Finished: state == syncloop.Terminated}
			for _, w := range driver.Waiting(uid) {
				in.Waiting = append(in.Waiting, statusmgr.Waiting{Name: w.Name, Reason: w.Reason, Message: w.Message})
			}
			st := statusmgr.Generate(in)
			last[uid] = &st
			if l := line(pod, &st, state); l != lines[uid] {
				fmt.Fprintf(out, "%s %s\n", time.Now().Format(time.TimeOnly), l)
				lines[uid] = l
			}
			if state == syncloop.Terminated && !wanted {
				delete(pods, uid)
				delete(last, uid)
				delete(lines, uid)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-events.Events():
		case <-tick.C:
		}
	}
}

// line sums up one pod's status: name, UID, phase, each container's
// state, and the worker's state once the pod stops:
//
//	default/hello-node (6f1c2a9e) Running app:running,ready
//	default/hello-node (6f1c2a9e) Running app:terminated(Completed,exit=0) [terminated]
//
// (A static pod keeps the phase Running once stopped, as in the kubelet.)
func line(pod *v1.Pod, st *v1.PodStatus, state syncloop.WorkerState) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s/%s (%.8s) %s", pod.Namespace, pod.Name, pod.UID, st.Phase)
	for _, cs := range slices.Concat(st.InitContainerStatuses, st.ContainerStatuses) {
		switch s := cs.State; {
		case s.Waiting != nil:
			fmt.Fprintf(&b, " %s:waiting(%s)", cs.Name, s.Waiting.Reason)
		case s.Running != nil && cs.Ready:
			fmt.Fprintf(&b, " %s:running,ready", cs.Name)
		case s.Running != nil:
			fmt.Fprintf(&b, " %s:running", cs.Name)
		case s.Terminated != nil:
			fmt.Fprintf(&b, " %s:terminated(%s,exit=%d)", cs.Name, s.Terminated.Reason, s.Terminated.ExitCode)
		}
		if cs.RestartCount > 0 {
			fmt.Fprintf(&b, ",restarts=%d", cs.RestartCount)
		}
	}
	if state != syncloop.Syncing {
		fmt.Fprintf(&b, " [%s]", state)
	}
	return b.String()
}
