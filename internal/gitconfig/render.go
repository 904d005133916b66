package gitconfig

import (
	"fmt"
	"strings"
)

// Render writes entries in git's config file syntax, one section header per
// entry (git merges repeated sections). Keys are section.name or
// section.subsection.name, where the subsection may contain dots; values
// and subsections are always quoted, so any byte git accepts survives.
// Entries whose key is not of that form are skipped: callers build them, and
// user input is checked by Parse first.
func Render(entries []Entry) string {
	var b strings.Builder
	for _, e := range entries {
		first := strings.IndexByte(e.Key, '.')
		last := strings.LastIndexByte(e.Key, '.')
		if first <= 0 || last == len(e.Key)-1 {
			continue
		}
		section, name := e.Key[:first], e.Key[last+1:]
		if first == last {
			fmt.Fprintf(&b, "[%s]\n", section)
		} else {
			fmt.Fprintf(&b, "[%s %s]\n", section, quote(e.Key[first+1:last]))
		}
		fmt.Fprintf(&b, "\t%s = %s\n", name, quote(e.Value))
	}
	return b.String()
}

var quoter = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`, "\t", `\t`)

func quote(s string) string { return `"` + quoter.Replace(s) + `"` }
