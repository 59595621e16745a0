package staticpod

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	v1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/nodekit/nodekit/core"
)

func mpod(name, image string) *v1.Pod {
	return &v1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default", UID: types.UID("uid-" + name + "-" + image)},
		Spec: v1.PodSpec{Containers: []v1.Container{{Name: "c", Image: image}}}}
}

// drain renders the updates waiting in the merger: OP(source):name,...
func drain(m *Merger) string {
	var out []string
	for {
		select {
		case u := <-m.Updates():
			var names []string
			for _, p := range u.Pods {
				names = append(names, p.Name)
			}
			out = append(out, fmt.Sprintf("%s(%s):%s", u.Op, u.Source, strings.Join(names, ",")))
		default:
			return strings.Join(out, " ")
		}
	}
}

func TestMerger(t *testing.T) {
	clk := clocktesting.NewFakeClock(time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC))
	m, err := NewMerger(MergerConfig{Sources: []string{core.SourceFile, core.SourceHTTP}, Clock: clk})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set := func(source string, pods ...*v1.Pod) {
		t.Helper()
		if err := m.Set(ctx, source, pods); err != nil {
			t.Fatal(err)
		}
	}
	a, b := mpod("a", "v1"), mpod("b", "v1")
	set(core.SourceFile, a, b)
	if got := drain(m); got != "ADD(file):a,b" {
		t.Fatalf("first snapshot: %s", got)
	}
	if m.AllReady() {
		t.Fatal("ready before the HTTP source was heard from")
	}
	set(core.SourceHTTP)
	if got := drain(m); got != "ADD(http):" || !m.AllReady() {
		t.Fatalf("an empty first snapshot: %q, ready %v", got, m.AllReady())
	}
	clk.Step(time.Minute)
	// Unchanged: nothing. Labels changed: UPDATE, keeping first-seen.
	set(core.SourceFile, a, b)
	if got := drain(m); got != "" {
		t.Fatalf("unchanged snapshot sent %s", got)
	}
	b2 := b.DeepCopy()
	b2.Labels = map[string]string{"tier": "x"}
	set(core.SourceFile, a, b2)
	u := <-m.Updates()
	if u.Op != core.OpUpdate || u.Pods[0].Name != "b" || u.Pods[0].Annotations[core.AnnotationConfigSeen] != "2026-11-26T12:00:00Z" ||
		u.Pods[0].Annotations[core.AnnotationConfigSource] != core.SourceFile {
		t.Fatalf("update: %v %+v", u.Op, u.Pods[0].ObjectMeta)
	}
	// Status alone: RECONCILE. Deletion timestamp: DELETE. Gone: REMOVE.
	// An edited manifest (new UID) is a REMOVE and an ADD, in that order.
	a2 := a.DeepCopy()
	a2.Status.Phase = v1.PodFailed
	set(core.SourceFile, a2, b2)
	if got := drain(m); got != "RECONCILE(file):a" {
		t.Fatalf("status change: %s", got)
	}
	b3 := b2.DeepCopy()
	b3.DeletionTimestamp = &metav1.Time{Time: clk.Now()}
	set(core.SourceFile, a2, b3)
	if got := drain(m); got != "DELETE(file):b" {
		t.Fatalf("graceful delete: %s", got)
	}
	aEdited := mpod("a", "v2")
	set(core.SourceFile, aEdited)
	if got := drain(m); got != "REMOVE(file):a,b ADD(file):a" {
		t.Fatalf("edit and removal: %s", got)
	}
	// The ADD stamps the time it was first seen.
	set(core.SourceHTTP, mpod("h", "v1"))
	u = <-m.Updates()
	if u.Pods[0].Annotations[core.AnnotationConfigSeen] != "2026-11-26T12:01:00Z" {
		t.Fatalf("seen %q", u.Pods[0].Annotations[core.AnnotationConfigSeen])
	}
	// Two pods of one name in a snapshot: the first stays.
	dup := mpod("a", "v3")
	err = m.Set(ctx, core.SourceHTTP, []*v1.Pod{mpod("h", "v1"), mpod("x", "v1"), dup, mpod("x", "v2")})
	if !errors.Is(err, ErrInvalidManifest) || !strings.Contains(err.Error(), "pod default/x (UID uid-x-v2) dropped") {
		t.Fatalf("duplicate: %v", err)
	}
	if got := drain(m); got != "ADD(http):x,a" {
		t.Fatalf("with a duplicate: %s", got)
	}
	if err := m.Set(ctx, "nope", nil); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("unknown source: %v", err)
	}
}

// Set blocks while the channel is full and gives up when ctx ends.
func TestMergerBlocksUntilCtx(t *testing.T) {
	m, err := NewMerger(MergerConfig{Sources: []string{"s"}, Buffer: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Set(context.Background(), "s", []*v1.Pod{mpod("a", "1")}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := m.Set(ctx, "s", nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Set with the channel full: %v", err)
	}
	// The removal that could not be sent is sent by the next snapshot.
	<-m.Updates()
	if err := m.Set(context.Background(), "s", nil); err != nil {
		t.Fatal(err)
	}
	if got := drain(m); got != "REMOVE(s):a" {
		t.Fatalf("after the failed Set: %q, want the removal again", got)
	}
	if _, err := NewMerger(MergerConfig{}); !errors.Is(err, core.ErrInvalid) {
		t.Fatalf("no sources: %v", err)
	}
}
