package runtimetest

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	runtimeapi "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/nodekit/nodekit/core"
)

// TestCopiesAreDeep fills every exported field of a message by reflection
// and checks the copy has them all and shares no memory with the original:
// a field added to the CRI API fails here until the copy learns it.
func TestCopiesAreDeep(t *testing.T) {
	for _, tc := range []struct {
		src  any
		copy func(any) any
	}{
		{&runtimeapi.Mount{}, func(v any) any { return copyMounts([]*runtimeapi.Mount{v.(*runtimeapi.Mount)})[0] }},
		{&runtimeapi.ContainerResources{}, func(v any) any { return copyResources(v.(*runtimeapi.ContainerResources)) }},
		{&runtimeapi.NamespaceOption{}, func(v any) any { return copyNamespaceOption(v.(*runtimeapi.NamespaceOption)) }},
		{&runtimeapi.ImageSpec{}, func(v any) any { return copyImageSpec(v.(*runtimeapi.ImageSpec)) }},
		{&runtimeapi.PodSandboxMetadata{}, func(v any) any { return copyPodSandboxMetadata(v.(*runtimeapi.PodSandboxMetadata)) }},
	} {
		n := 0
		fill(reflect.ValueOf(tc.src).Elem(), &n)
		name := reflect.TypeOf(tc.src).Elem().Name()
		for _, problem := range compare(name, reflect.ValueOf(tc.src), reflect.ValueOf(tc.copy(tc.src))) {
			t.Error(problem)
		}
	}
}

// fill sets every exported field to a distinct non-zero value.
func fill(v reflect.Value, n *int) {
	*n++
	switch v.Kind() {
	case reflect.Struct:
		for i := range v.NumField() {
			if v.Type().Field(i).IsExported() {
				fill(v.Field(i), n)
			}
		}
	case reflect.Pointer:
		v.Set(reflect.New(v.Type().Elem()))
		fill(v.Elem(), n)
	case reflect.Slice:
		s := reflect.MakeSlice(v.Type(), 2, 2)
		for i := range 2 {
			fill(s.Index(i), n)
		}
		v.Set(s)
	case reflect.Map:
		m := reflect.MakeMap(v.Type())
		k, e := reflect.New(v.Type().Key()).Elem(), reflect.New(v.Type().Elem()).Elem()
		fill(k, n)
		fill(e, n)
		m.SetMapIndex(k, e)
		v.Set(m)
	case reflect.String:
		v.SetString(fmt.Sprint("s", *n))
	case reflect.Bool:
		v.SetBool(true)
	case reflect.Int32, reflect.Int64:
		v.SetInt(int64(*n))
	case reflect.Uint32, reflect.Uint64:
		v.SetUint(uint64(*n))
	default:
		panic("fill: unhandled kind " + v.Kind().String())
	}
}

// compare lists how b differs from a or shares memory with it.
func compare(path string, a, b reflect.Value) []string {
	switch a.Kind() {
	case reflect.Struct:
		var out []string
		for i := range a.NumField() {
			if f := a.Type().Field(i); f.IsExported() {
				out = append(out, compare(path+"."+f.Name, a.Field(i), b.Field(i))...)
			}
		}
		return out
	case reflect.Pointer, reflect.Slice, reflect.Map:
		switch {
		case a.IsNil() != b.IsNil():
			return []string{path + ": not copied"}
		case a.IsNil():
			return nil
		case a.Pointer() == b.Pointer():
			return []string{path + ": shared, not copied"}
		}
		switch a.Kind() {
		case reflect.Pointer:
			return compare(path, a.Elem(), b.Elem())
		case reflect.Slice:
			if a.Len() != b.Len() {
				return []string{path + ": length differs"}
			}
			var out []string
			for i := range a.Len() {
				out = append(out, compare(fmt.Sprintf("%s[%d]", path, i), a.Index(i), b.Index(i))...)
			}
			return out
		}
		if !reflect.DeepEqual(a.Interface(), b.Interface()) {
			return []string{path + ": map differs"}
		}
		return nil
	}
	if !a.Equal(b) {
		return []string{fmt.Sprintf("%s: %v, want %v", path, b, a)}
	}
	return nil
}

func TestNormalizeRef(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for in, want := range map[string]string{
		"busybox":                         "docker.io/library/busybox:latest",
		"busybox:1.36":                    "docker.io/library/busybox:1.36",
		"library/busybox":                 "docker.io/library/busybox:latest",
		"team/app":                        "docker.io/team/app:latest",
		"docker.io/busybox":               "docker.io/library/busybox:latest",
		"localhost/busybox":               "localhost/busybox:latest",
		"localhost:5000/app:v1":           "localhost:5000/app:v1",
		"registry.k8s.io/pause:3.10":      "registry.k8s.io/pause:3.10",
		"quay.io/a/b/c":                   "quay.io/a/b/c:latest",
		"busybox@" + digest:               "docker.io/library/busybox@" + digest,
		"busybox:1@" + digest:             "docker.io/library/busybox:1@" + digest,
		"":                                "",
		"Busybox":                         "",
		"busybox:":                        "",
		"busybox@sha256:abc":              "",
		"busybox:bad/tag":                 "",
		"registry.example.com/Team/app:1": "",
	} {
		got, err := normalizeRef(in)
		if want == "" {
			if !errors.Is(err, core.ErrInvalid) {
				t.Errorf("normalizeRef(%q) = %q, %v; want core.ErrInvalid", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("normalizeRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// The trap of a shell runs when its current foreground sleep ends.
func TestTrapWaitsForTheForegroundChild(t *testing.T) {
	p := commandProgram([]string{"sh", "-c", "sleep 2; trap 'exit 3' TERM; sleep 10; while true; do sleep 4; true; sleep 1; done"}, true)
	if p.exit != nil {
		t.Fatalf("the shell ends after %s, want never", p.exit.After)
	}
	for _, tc := range []struct {
		signal time.Duration
		ends   time.Duration // after the signal; -1: it carries on
	}{
		{time.Second, -1},                   // before the trap: ignored by PID 1
		{2 * time.Second, 10 * time.Second}, // at the start of sleep 10
		{5 * time.Second, 7 * time.Second},
		{12 * time.Second, 4 * time.Second}, // the loop's first sleep 4
		{16 * time.Second, time.Second},     // its sleep 1
		{17 * time.Second, 4 * time.Second}, // the second iteration
		{16*time.Second + 500*time.Millisecond + 5*time.Hour, 500 * time.Millisecond},
	} {
		e, ok := p.onStop(tc.signal)
		switch {
		case tc.ends < 0 && ok:
			t.Errorf("signal at %s: ends after %s, want ignored", tc.signal, e.After)
		case tc.ends >= 0 && (!ok || e.After != tc.ends || e.Code != 3):
			t.Errorf("signal at %s: %+v (%v), want exit 3 after %s", tc.signal, e, ok, tc.ends)
		}
	}
}
