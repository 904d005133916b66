// Package secret holds the Secret type: a string that refuses to be printed.
//
// Passwords, tokens and private keys travel through git-sync as Secret values
// so that no log line, error file, JSON document or fmt verb can reveal them by
// accident; code that really needs the text calls Reveal, which is easy to
// grep for.
package secret

import "log/slog"

// Redacted is what a Secret prints instead of its value.
const Redacted = "REDACTED"

// Secret is a string that prints as Redacted everywhere.
type Secret struct{ value string }

// New wraps s.
func New(s string) Secret { return Secret{value: s} }

// Reveal returns the secret text. Call it only where the text is handed to
// its consumer (git's credential protocol, an HTTP Authorization header).
func (s Secret) Reveal() string { return s.value }

// IsZero reports whether no secret was given.
func (s Secret) IsZero() bool { return s.value == "" }

// String implements fmt.Stringer.
func (s Secret) String() string {
	if s.value == "" {
		return ""
	}
	return Redacted
}

// GoString implements fmt.GoStringer so %#v does not reveal it either.
func (s Secret) GoString() string { return `secret.Secret("` + s.String() + `")` }

// LogValue implements slog.LogValuer.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalJSON implements json.Marshaler.
func (s Secret) MarshalJSON() ([]byte, error) { return []byte(`"` + s.String() + `"`), nil }

// MarshalText implements encoding.TextMarshaler.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }
