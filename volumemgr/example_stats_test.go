package volumemgr_test

import (
	"context"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/nodekit/nodekit/volumemgr"
)

// A configMap volume of two keys measured once, and one of its gauges as a
// scrape shows it. A node agent calls Run instead of Refresh, and lists the
// volumes its volume manager has set up.
func ExampleStats() {
	dir, err := os.MkdirTemp("", "configmap")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	for _, key := range []string{"app.conf", "users.conf"} {
		if err := os.WriteFile(filepath.Join(dir, key), []byte("value\n"), 0o644); err != nil {
			log.Fatal(err)
		}
	}

	reg := prometheus.NewRegistry()
	stats, err := volumemgr.NewStats(volumemgr.StatsConfig{
		Volumes: func() []volumemgr.VolumeRef {
			return []volumemgr.VolumeRef{{
				PodUID: "8d9c1c2e", Namespace: "shop", Pod: "web-0",
				Volume: "config", Plugin: volumemgr.PluginConfigMap, Path: dir,
			}}
		},
		Registerer: reg,
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := stats.Refresh(context.Background()); err != nil {
		log.Fatal(err)
	}

	st := stats.PodVolumeStats("8d9c1c2e")["config"]
	fmt.Println("inodes used:", st.InodesUsed)
	fmt.Println("uses some bytes of its filesystem:", st.UsedBytes > 0 && st.UsedBytes < st.CapacityBytes)

	families, err := reg.Gather()
	if err != nil {
		log.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != "kubelet_volume_stats_inodes_used" {
			continue
		}
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			fmt.Printf("%s{%s} %g\n", f.GetName(), strings.Join(labels, ","), m.GetGauge().GetValue())
		}
	}
	// Output:
	// inodes used: 3
	// uses some bytes of its filesystem: true
	// kubelet_volume_stats_inodes_used{namespace="shop",persistentvolumeclaim="",pod="web-0",volume="config"} 3
}

// DiskUsage counts a directory, its entries and the blocks they occupy; a
// file linked twice counts once.
func ExampleDiskUsage() {
	dir, err := os.MkdirTemp("", "volume")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	if err := os.WriteFile(filepath.Join(dir, "data"), []byte(strings.Repeat("nodekit ", 10_000)), 0o644); err != nil {
		log.Fatal(err)
	}
	before, err := volumemgr.DiskUsage(context.Background(), dir)
	if err != nil {
		log.Fatal(err)
	}
	if err := os.Link(filepath.Join(dir, "data"), filepath.Join(dir, "data.link")); err != nil {
		log.Fatal(err)
	}
	after, err := volumemgr.DiskUsage(context.Background(), dir)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("inodes:", before.Inodes, after.Inodes)
	fmt.Println("same bytes with the second link:", after.Bytes == before.Bytes)
	// Output:
	// inodes: 2 2
	// same bytes with the second link: true
}
