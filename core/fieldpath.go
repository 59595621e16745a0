package core

import (
	"maps"
	"slices"
	"strconv"
	"strings"
)

// SplitFieldSubscript splits a downward API field path with a subscript,
// "metadata.labels['a[b]c']", into "metadata.labels" and "a[b]c"; ok is
// false for a path without one.
func SplitFieldSubscript(fieldPath string) (base, key string, ok bool) {
	s, found := strings.CutSuffix(fieldPath, "']")
	if !found {
		return fieldPath, "", false
	}
	base, key, found = strings.Cut(s, "['")
	if !found || base == "" {
		return fieldPath, "", false
	}
	return base, key, true
}

// FormatDownwardMap renders labels or annotations as the kubelet's downward
// API does, for environment variables and volume files alike: one
// key="value" line per entry, sorted by key, the value quoted as Go quotes
// strings, lines joined by "\n" with none at the end.
func FormatDownwardMap(m map[string]string) string {
	var b strings.Builder
	for i, k := range slices.Sorted(maps.Keys(m)) {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(m[k]))
	}
	return b.String()
}
