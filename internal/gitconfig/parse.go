// Package gitconfig is git's configuration as git-sync handles it: the
// grammar of --git-config (key:value pairs, quoted and escaped) and the
// rendering of entries into git's config file syntax. Both sides live here
// so that what a user writes and what git reads are defined in one place.
package gitconfig

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Parse reads the value of --git-config: git configuration entries
// written as key:value pairs separated by commas. It exists because values
// routinely contain the separators themselves (URLs hold ':'; headers hold
// ','), so the grammar needs quoting and escapes:
//
//   - A key ends at the first ':' and a value at the next ',' (or the end).
//     Values may contain ':' freely; a ',' inside an unquoted value must be
//     written as "\,".
//   - A key or a value may be enclosed in double quotes; inside quotes ':'
//     and ',' are ordinary characters. A closing quote must be followed by
//     ':' (after a key) or by ',' or the end (after a value).
//   - Inside an unquoted key, a double-quoted part (git's own way of writing
//     a subsection, as in url."https://host/".insteadOf) may hold ':' and ','
//     too; its quotes are dropped, since git takes the subsection literally.
//   - Spaces and tabs around an unquoted key are ignored ("a.b:1, c.d:2").
//   - Everywhere, backslash starts an escape: \n (newline), \t (tab), \",
//     \, and \\. Any other escape is an error.
//
// For example `"url.https://host/.insteadOf":git@host:` and
// `url."https://host/".insteadOf:git@host:` both give the key
// url.https://host/.insteadOf with the value git@host:. Entries come back in
// input order with Add false. Errors give the 1-based byte position of the
// problem and never quote values, which may be secrets.
func Parse(s string) ([]Entry, error) {
	if s == "" {
		return nil, nil
	}
	g := gitConfigScanner{s: s}
	var out []Entry
	for {
		keyPos := g.i
		key, err := g.key()
		if err != nil {
			return nil, err
		}
		if i := strings.Index(key, "."); i <= 0 || strings.LastIndex(key, ".") == len(key)-1 {
			return nil, fmt.Errorf("key %q at position %d is not of the form section.name", key, keyPos+1)
		}
		value, err := g.value()
		if err != nil {
			return nil, err
		}
		out = append(out, Entry{Key: key, Value: value})
		if g.i == len(s) {
			return out, nil
		}
		g.i++ // the ',' that ended the value
	}
}

// Entry is one configuration value. Add is true for --git-config-add (git
// config --add) and false for --git-config (set, replacing earlier values
// of the key).
type Entry struct {
	Key   string
	Value string
	Add   bool
}

// gitConfigScanner walks a --git-config string; i is the next byte to read.
type gitConfigScanner struct {
	s string
	i int
}

// key reads a key and the ':' after it.
func (g *gitConfigScanner) key() (string, error) {
	start := g.i
	var b strings.Builder
	quotedKey := g.peek() == '"'
	if quotedKey {
		if err := g.quoted(&b, "key"); err != nil {
			return "", err
		}
		if g.i >= len(g.s) {
			return "", fmt.Errorf("missing ':' after the key at position %d", g.i+1)
		}
		if g.s[g.i] != ':' {
			return "", g.afterQuote("':'")
		}
	} else {
		for {
			if g.i >= len(g.s) || g.s[g.i] == ',' {
				if b.Len() == 0 {
					return "", fmt.Errorf("empty key at position %d", start+1)
				}
				return "", fmt.Errorf("missing ':' after the key at position %d", g.i+1)
			}
			c := g.s[g.i]
			if c == ':' {
				break
			}
			switch c {
			case '"':
				if err := g.quoted(&b, "subsection"); err != nil {
					return "", err
				}
			case '\\':
				if err := g.escape(&b); err != nil {
					return "", err
				}
			default:
				b.WriteByte(c)
				g.i++
			}
		}
	}
	g.i++ // the ':'
	key := b.String()
	if !quotedKey {
		key = strings.Trim(key, " \t")
	}
	if key == "" {
		return "", fmt.Errorf("empty key at position %d", start+1)
	}
	return key, nil
}

// value reads a value up to (not including) the ',' that ends it.
func (g *gitConfigScanner) value() (string, error) {
	var b strings.Builder
	if g.peek() == '"' {
		if err := g.quoted(&b, "value"); err != nil {
			return "", err
		}
		if g.i < len(g.s) && g.s[g.i] != ',' {
			return "", g.afterQuote("',' or the end")
		}
		return b.String(), nil
	}
	for g.i < len(g.s) && g.s[g.i] != ',' {
		if g.s[g.i] == '\\' {
			if err := g.escape(&b); err != nil {
				return "", err
			}
			continue
		}
		b.WriteByte(g.s[g.i])
		g.i++
	}
	return b.String(), nil
}

// quoted reads a double-quoted string starting at g.i into b, leaving g.i
// just after the closing quote. what names the part for errors.
func (g *gitConfigScanner) quoted(b *strings.Builder, what string) error {
	open := g.i
	g.i++
	for g.i < len(g.s) {
		switch g.s[g.i] {
		case '"':
			g.i++
			return nil
		case '\\':
			if err := g.escape(b); err != nil {
				return err
			}
		default:
			b.WriteByte(g.s[g.i])
			g.i++
		}
	}
	return fmt.Errorf("unterminated quoted %s starting at position %d", what, open+1)
}

// escape reads the escape sequence starting at g.i (a backslash) into b.
func (g *gitConfigScanner) escape(b *strings.Builder) error {
	at := g.i
	if at+1 >= len(g.s) {
		return fmt.Errorf("unfinished escape at position %d (backslash at the end)", at+1)
	}
	switch c := g.s[at+1]; c {
	case 'n':
		b.WriteByte('\n')
	case 't':
		b.WriteByte('\t')
	case '"', ',', '\\':
		b.WriteByte(c)
	default:
		r, _ := utf8.DecodeRuneInString(g.s[at+1:])
		return fmt.Errorf(`invalid escape "\%c" at position %d (want \n, \t, \", \, or \\)`, r, at+1)
	}
	g.i += 2
	return nil
}

// afterQuote reports a stray character after a closing quote.
func (g *gitConfigScanner) afterQuote(want string) error {
	r, _ := utf8.DecodeRuneInString(g.s[g.i:])
	return fmt.Errorf("unexpected %q after the closing quote at position %d, want %s", r, g.i+1, want)
}

// peek returns the next byte, or 0 at the end.
func (g *gitConfigScanner) peek() byte {
	if g.i < len(g.s) {
		return g.s[g.i]
	}
	return 0
}
