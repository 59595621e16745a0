package crispec

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestExpand(t *testing.T) {
	vars := map[string]string{"A": "a", "B": "bee", "EMPTY": "", "$": "dollar"}
	for _, tc := range []struct {
		in, want string
	}{
		{"", ""},
		{"plain", "plain"},
		{"$(A)", "a"},
		{"x$(A)y$(B)z", "xaybeez"},
		{"$(A)$(B)", "abee"},
		{"$(EMPTY)-", "-"},
		{"$(UNKNOWN)", "$(UNKNOWN)"},
		{"$$(A)", "$(A)"},
		{"$$$(A)", "$a"},
		{"$$$$(A)", "$$(A)"},
		{"$$", "$"},
		{"$", "$"},
		{"a$", "a$"},
		{"$A", "$A"},
		{"${A}", "${A}"},
		{"$(A", "$(A"},
		{"$(", "$("},
		{"$()", "$()"},
		{"$(A)$(", "a$("},
		{"$(A $(B)", "$(A $(B)"},
		{"$($)", "dollar"},
		{"$é", "$é"},
		{"$\xff", "$\uFFFD"},
		{"$(A)\xff", "a\xff"},
	} {
		if got := expand(tc.in, keepUnknown(vars)); got != tc.want {
			t.Errorf("expand(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestExpandSubPath(t *testing.T) {
	env := map[string]string{"POD": "web-0", "EMPTY": ""}
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "logs/$(POD)", want: "logs/web-0"},
		{in: "$$(POD)", want: "$(POD)"},
		{in: "$(NOPE)/$(EMPTY)/$(NOPE)", err: `subPathExpr "$(NOPE)/$(EMPTY)/$(NOPE)": no value for EMPTY, NOPE`},
	} {
		got, err := expandSubPath(tc.in, env)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("expandSubPath(%q) error = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("expandSubPath(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func FuzzExpand(f *testing.F) {
	for _, s := range []string{"", "$(A)", "$$(A)", "$(", "$", "a$(B", "$\xff", "$$$(A)$"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := expand(s, keepUnknown(map[string]string{"A": "x"}))
		if !strings.Contains(s, "$") && got != s {
			t.Fatalf("expand(%q) = %q changed text without references", s, got)
		}
		// With a lookup that returns references unchanged, only escapes
		// ($$) and invalid bytes after $ change the text.
		if !strings.Contains(s, "$$") && !strings.Contains(s, "$(A)") && utf8.ValidString(s) {
			if id := expand(s, keepUnknown()); id != s {
				t.Fatalf("expand(%q) = %q, want the input back", s, id)
			}
		}
	})
}
