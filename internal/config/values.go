package config

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"gitsync/internal/secret"
)

// The types below implement pflag.Value for the kinds of values git-sync's
// flags take. Each writes straight into its destination (usually a Config
// field), so the same value serves the command line and the environment.
// Their error messages are short and never repeat the input: the caller adds
// the flag or variable name, and pflag adds the value for command-line input.

// stringValue is a plain string.
type stringValue struct{ p *string }

func (v stringValue) Set(s string) error { *v.p = s; return nil }
func (v stringValue) String() string     { return *v.p }
func (v stringValue) Type() string       { return "string" }

// boolValue is a boolean parsed strictly by strconv.ParseBool, so that a typo
// such as "maybe" or "yes" is an error instead of a silent false.
type boolValue struct{ p *bool }

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("not a boolean (use true or false)")
	}
	*v.p = b
	return nil
}
func (v boolValue) String() string { return strconv.FormatBool(*v.p) }
func (v boolValue) Type() string   { return "bool" }

// floatValue is a decimal number.
type floatValue struct{ p *float64 }

func (v floatValue) Set(s string) error {
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		return errors.New("not a number")
	}
	*v.p = f
	return nil
}
func (v floatValue) String() string { return strconv.FormatFloat(*v.p, 'g', -1, 64) }
func (v floatValue) Type() string   { return "float" }

// intValue is a decimal int.
type intValue struct{ p *int }

func (v intValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not an integer")
	}
	*v.p = n
	return nil
}
func (v intValue) String() string { return strconv.Itoa(*v.p) }
func (v intValue) Type() string   { return "int" }

// int64Value is a decimal int64 (GitHub App and installation IDs).
type int64Value struct{ p *int64 }

func (v int64Value) Set(s string) error {
	n, err := strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	if err != nil {
		return errors.New("not an integer")
	}
	*v.p = n
	return nil
}
func (v int64Value) String() string { return strconv.FormatInt(*v.p, 10) }
func (v int64Value) Type() string   { return "int64" }

// durationValue is a Go duration such as "10s", "1m30s" or "500ms".
type durationValue struct{ p *time.Duration }

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a duration (use a number with a unit, like 10s or 500ms)")
	}
	*v.p = d
	return nil
}
func (v durationValue) String() string { return v.p.String() }
func (v durationValue) Type() string   { return "duration" }

// floatSecondsValue is a number of seconds with a fraction, as v3's --wait
// took it.
type floatSecondsValue struct{ p *time.Duration }

func (v floatSecondsValue) Set(s string) error {
	f, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
	if err != nil {
		return errors.New("not a number of seconds")
	}
	*v.p = time.Duration(f * float64(time.Second))
	return nil
}
func (v floatSecondsValue) String() string {
	return strconv.FormatFloat(v.p.Seconds(), 'f', -1, 64)
}
func (v floatSecondsValue) Type() string { return "float" }

// intSecondsValue is a whole number of seconds, as v3's --timeout took it.
type intSecondsValue struct{ p *time.Duration }

func (v intSecondsValue) Set(s string) error {
	n, err := strconv.Atoi(strings.TrimSpace(s))
	if err != nil {
		return errors.New("not a whole number of seconds")
	}
	*v.p = time.Duration(n) * time.Second
	return nil
}
func (v intSecondsValue) String() string { return strconv.Itoa(int(v.p.Seconds())) }
func (v intSecondsValue) Type() string   { return "int" }

// secretValue holds a password or key. String never reveals it.
type secretValue struct{ p *secret.Secret }

func (v secretValue) Set(s string) error { *v.p = secret.New(s); return nil }
func (v secretValue) String() string     { return v.p.String() }
func (v secretValue) Type() string       { return "string" }

// listValue is a repeatable flag. The first use on the command line replaces
// the default; later uses append. From the environment, one variable gives
// the whole list: split on sep when sep is not empty, else a single item.
type listValue struct {
	p        *[]string
	sep      string
	secret   bool // items may hold passwords (--credential): never print them
	replaced bool
}

func (v *listValue) Set(s string) error {
	if !v.replaced {
		*v.p = nil
		v.replaced = true
	}
	*v.p = append(*v.p, s)
	return nil
}

// setEnv sets the whole list from one environment variable.
func (v *listValue) setEnv(s string) error {
	var items []string
	if v.sep == "" {
		items = []string{s}
	} else {
		for _, item := range strings.Split(s, v.sep) {
			if item != "" {
				items = append(items, item)
			}
		}
	}
	*v.p = items
	v.replaced = true
	return nil
}

func (v *listValue) String() string {
	if v.secret && len(*v.p) > 0 {
		return secret.Redacted
	}
	return strings.Join(*v.p, ",")
}
func (v *listValue) Type() string { return "stringArray" }

// envSetter is implemented by values whose environment form differs from a
// single command-line use.
type envSetter interface{ setEnv(string) error }

// checkParses reports whether s is a valid value for v without changing
// v's destination (scalar kinds only; strings and lists accept anything).
func checkParses(v pflag.Value, s string) error {
	switch v.(type) {
	case boolValue:
		return boolValue{new(bool)}.Set(s)
	case intValue:
		return intValue{new(int)}.Set(s)
	case int64Value:
		return int64Value{new(int64)}.Set(s)
	case durationValue:
		return durationValue{new(time.Duration)}.Set(s)
	case floatSecondsValue:
		return floatSecondsValue{new(time.Duration)}.Set(s)
	case intSecondsValue:
		return intSecondsValue{new(time.Duration)}.Set(s)
	}
	return nil
}
