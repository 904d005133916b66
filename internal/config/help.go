package config

import (
	"fmt"
	"io"
	"slices"
	"strings"
)

// helpWidth is the column --help and --man text is wrapped at.
const helpWidth = 80

// WriteHelp writes the --help text: a short introduction and every flag
// with its meaning, its default and its environment variable, grouped by
// topic. It is generated from the same table the parser uses, so it cannot
// drift from what is accepted, and it never shows current values (which may
// be secrets), only built-in defaults.
func WriteHelp(w io.Writer) {
	var b strings.Builder
	b.WriteString(`Usage: git-sync --repo=URL --root=DIR [flags]

git-sync keeps a local directory in step with a git ref. It fetches the ref,
checks each new commit out into its own tree under --root, and atomically
points a symlink (--link) at that tree.

Every flag can also be set with the environment variable shown beside it;
the older GIT_SYNC_<NAME> spellings still work, with a warning. A flag on the
command line wins over the environment. "git-sync --man" prints the manual.
`)
	opts := newParser(nil).opts
	for _, topic := range topicOrder {
		fmt.Fprintf(&b, "\n%s:\n", topic)
		for _, o := range opts {
			if o.topic != topic || o.hidden {
				continue
			}
			b.WriteString("  " + optionHeading(o) + "\n")
			wrap(&b, o.usage, "      ")
			if facts := optionFacts(o, false); facts != "" {
				wrap(&b, facts, "      ")
			}
		}
	}
	io.WriteString(w, b.String()) // nothing useful to do if stdout is gone
}

// optionHeading is how an option is written at the head of its entry:
// "-v, --verbose=N", "--one-time", "$GITSYNC_PASSWORD".
func optionHeading(o *option) string {
	if o.envOnly {
		return "$" + o.newEnvName()
	}
	h := "--" + o.name
	if o.arg != "" {
		h += "=" + o.arg
	}
	switch {
	case o.name == "help":
		h = "-h, -?, " + h
	case o.short != "":
		h = "-" + o.short + ", " + h
	}
	return h
}

// optionFacts lists an option's default and environment variables. With
// all, deprecated variable names are listed too (for --man).
func optionFacts(o *option, all bool) string {
	var facts []string
	if o.def != "" {
		facts = append(facts, "Default: "+o.def+".")
	}
	var current, old []string
	for _, n := range o.envNames() {
		switch {
		case strings.HasPrefix(n, "GITSYNC_"):
			if !o.envOnly { // otherwise the heading already names it
				current = append(current, "$"+n)
			}
		case all || slices.Contains(o.legacyEnv, n):
			// The generic GIT_SYNC_<NAME> spellings are described once in
			// the introduction of --help; --man lists them all.
			old = append(old, "$"+n)
		}
	}
	switch {
	case o.rejected != "" && len(old) > 0:
		facts = append(facts, "Also rejected from "+strings.Join(old, ", ")+".")
	case len(current) > 0 && len(old) > 0:
		facts = append(facts, "Environment: "+strings.Join(current, ", ")+" (deprecated: "+strings.Join(old, ", ")+").")
	case len(current) > 0:
		facts = append(facts, "Environment: "+strings.Join(current, ", ")+".")
	case len(old) > 0:
		facts = append(facts, "Environment (deprecated): "+strings.Join(old, ", ")+".")
	}
	if o.envOnly && o.deprecated != "" {
		facts = append(facts, "The flag --"+o.name+" still works but is deprecated: "+o.deprecated+".")
	}
	return strings.Join(facts, " ")
}

// wrap writes text to b, word-wrapped at helpWidth, each line prefixed with
// indent.
func wrap(b *strings.Builder, text, indent string) {
	for _, para := range strings.Split(text, "\n") {
		line := indent
		for _, word := range strings.Fields(para) {
			if len(line) > len(indent) && len(line)+1+len(word) > helpWidth {
				b.WriteString(line + "\n")
				line = indent
			}
			if len(line) > len(indent) {
				line += " "
			}
			line += word
		}
		b.WriteString(line + "\n")
	}
}
