// Package operations holds what an operator runs next to nodes driven by
// nodekit, on the metrics its subsystems export under the kubelet's names
// (kubelet_pod_start_duration_seconds, kubelet_pleg_relist_duration_seconds,
// kubelet_evictions, kubelet_volume_stats_*, ...):
//
//   - alerts.yaml: Prometheus alerting rules for slow pod starts, slow and
//     stalled PLEG relists, evictions, volumes running out of bytes or
//     inodes, and slow pod status syncs;
//   - alerts_test.yaml: their unit tests, for promtool test rules;
//   - dashboard.json: a Grafana dashboard of the same metrics, with its
//     data source as a variable.
//
// The package has no code. Its tests check the rules and their unit tests
// with promtool (built by hack/promtool.sh install), check that every
// dashboard query parses, and check that every metric and label the rules
// and the dashboard use is one that examples/node registers. README.md says
// what each alert means and how to load the files.
package operations
