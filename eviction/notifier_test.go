package eviction

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/nodekit/nodekit/core"
)

func TestNotifierThreshold(t *testing.T) {
	gi := uint64(1 << 30)
	for _, tc := range []struct {
		name               string
		capacity, inactive uint64
		value              ThresholdValue
		want               uint64
	}{
		{"quantity", 8 * gi, 0, ThresholdValue{Quantity: resource.MustParse("100Mi")}, 8*gi - 100<<20},
		{"inactive file pages raise the usage to watch", 8 * gi, 2 * gi, ThresholdValue{Quantity: resource.MustParse("1Gi")}, 9 * gi},
		{"percentage of the capacity", 10 * gi, 0, ThresholdValue{Percentage: 0.25}, 15 * gi / 2},
		{"threshold above capacity", gi, 10, ThresholdValue{Quantity: resource.MustParse("2Gi")}, 10},
		{"never zero", gi, 0, ThresholdValue{Quantity: resource.MustParse("2Gi")}, 1},
		{"no threshold", gi, 5, ThresholdValue{}, gi + 5},
	} {
		if got := notifierThreshold(tc.capacity, tc.inactive, tc.value); got != tc.want {
			t.Errorf("%s: notifierThreshold = %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestReadUsageV2(t *testing.T) {
	dir := t.TempDir()
	if _, err := readUsageV2(dir); !errors.Is(err, core.ErrNotFound) {
		t.Errorf("no memory files: %v, want ErrNotFound", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.stat"), []byte("anon 100\nfile 23\nfile_mapped 7\ninactive_file 3\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readUsageV2(dir); err != nil || got != 123 {
		t.Errorf("root cgroup usage = %d, %v; want anon+file 123", got, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "memory.current"), []byte("4096\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := readUsageV2(dir); err != nil || got != 4096 {
		t.Errorf("usage = %d, %v; want memory.current 4096", got, err)
	}
}
