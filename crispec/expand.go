package crispec

import (
	"strings"
	"unicode/utf8"
)

// expand replaces the $(NAME) references in s the way the kubelet expands
// env values, command, args and subPathExpr:
//
//   - $(NAME) becomes lookup(NAME); lookup decides what an unknown name
//     becomes (for env, command and args: the reference, unchanged);
//   - $$ becomes $, so $$(NAME) is the literal text $(NAME);
//   - a $ followed by anything else, a $( that is never closed and a $ at
//     the very end are kept as they are.
//
// One quirk is kept for fidelity: a $ followed by a byte that is not valid
// UTF-8 turns that byte into U+FFFD.
func expand(s string, lookup func(name string) string) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	i := 0
	for i < len(s) {
		c := s[i]
		if c != '$' || i+1 == len(s) {
			b.WriteByte(c)
			i++
			continue
		}
		rest := s[i+1:]
		switch r, size := utf8.DecodeRuneInString(rest); r {
		case '$':
			b.WriteByte('$')
			i += 2
		case '(':
			end := strings.IndexByte(rest, ')')
			if end < 0 {
				// Unterminated: keep "$(" and scan on after it.
				b.WriteString("$(")
				i += 2
				continue
			}
			b.WriteString(lookup(rest[1:end]))
			i += 1 + end + 1
		default:
			b.WriteByte('$')
			b.WriteRune(r)
			i += 1 + size
		}
	}
	return b.String()
}

// keepUnknown returns a lookup for expand that leaves references to names
// it does not know as they were.
func keepUnknown(maps ...map[string]string) func(string) string {
	return func(name string) string {
		for _, m := range maps {
			if v, ok := m[name]; ok {
				return v
			}
		}
		return "$(" + name + ")"
	}
}
