package config

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"gitsync/internal/gitconfig"
)

// Action is what the caller should do with a parsed command line. Only
// ActionRun comes with a validated Config; the others are requests to print
// something and exit 0, honoured even when the rest of the configuration is
// incomplete (so --help works without --repo).
type Action int

const (
	// ActionRun means: run git-sync with Result.Config.
	ActionRun Action = iota
	// ActionHelp means: print WriteHelp's text and exit 0 (--help, -h, -?).
	ActionHelp
	// ActionMan means: print WriteMan's text and exit 0 (--man).
	ActionMan
	// ActionVersion means: print the version and exit 0 (--version).
	ActionVersion
)

// String returns the action's name, for test failures and debugging.
func (a Action) String() string {
	switch a {
	case ActionRun:
		return "run"
	case ActionHelp:
		return "help"
	case ActionMan:
		return "man"
	case ActionVersion:
		return "version"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Result is the outcome of Parse.
type Result struct {
	Action Action
	// Config is complete and validated when Action is ActionRun.
	Config Config
	// Warnings are deprecation notices (an old flag or environment
	// variable was used) for the caller to log once logging is set up.
	// They never contain secret values.
	Warnings []string
}

// UsageError reports a command line or environment variable that could not
// be read at all: an unknown flag, a missing argument, a value of the wrong
// type. The caller should add a hint about --help. Errors that are not
// UsageErrors are values that parsed but make no sense together.
type UsageError struct {
	Err error
}

// Error returns the underlying message.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap gives errors.Is and errors.As access to the underlying error.
func (e *UsageError) Unwrap() error { return e.Err }

// parser holds the state of one Parse call: the Config being built, the
// option table bound to it, and storage for settings that are not Config
// fields as such (deprecated spellings, raw text parsed later).
type parser struct {
	cfg    *Config
	opts   []*option
	byName map[string]*option
	fs     *pflag.FlagSet
	env    map[string]string

	help, man, version bool

	syncOnSignal string
	gitConfig    string
	gitConfigAdd []string
	credentials  []string

	branch, rev       string
	dest              string
	wait, timeout     time.Duration
	maxSyncFailures   int
	syncHookCommand   string
	v                 int
	ssh               bool
	changePermissions string

	warnings []string
	problems []error
}

// newParser returns a parser with defaults applied and every flag
// registered. env is in os.Environ form.
func newParser(env []string) *parser {
	p := &parser{
		cfg:    new(Config),
		byName: map[string]*option{},
		env:    map[string]string{},
	}
	setDefaults(p.cfg)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		if _, dup := p.env[k]; !dup { // the first one wins, as with os.Getenv
			p.env[k] = v
		}
	}

	p.fs = pflag.NewFlagSet("git-sync", pflag.ContinueOnError)
	p.fs.SetOutput(io.Discard)
	p.fs.Usage = func() {}
	p.fs.SortFlags = false
	p.opts = p.options()
	for _, o := range p.opts {
		p.byName[o.name] = o
		if !o.hasFlag() {
			continue
		}
		f := p.fs.VarPF(o.value, o.name, o.short, o.usage)
		if _, isBool := o.value.(boolValue); isBool {
			f.NoOptDefVal = "true"
		}
	}
	return p
}

// Parse builds git-sync's configuration from args (the command line without
// the program name) and env (os.Environ form). The command line beats the
// environment; among environment variables for one setting, the older
// spelling beats the newer one; empty variables count as unset.
//
// The error is a *UsageError when a flag or variable could not be read;
// otherwise it lists every validation problem found, one per line, each
// naming the flag concerned.
func Parse(args []string, env []string) (*Result, error) {
	p := newParser(env)
	if err := p.fs.Parse(args); err != nil {
		if p.help { // "-h --bogus": the user asked for help before the mistake
			return &Result{Action: ActionHelp, Config: *p.cfg}, nil
		}
		return nil, &UsageError{Err: err}
	}
	if rest := p.fs.Args(); len(rest) > 0 {
		return nil, &UsageError{Err: fmt.Errorf("unexpected argument %q: git-sync takes only flags", rest[0])}
	}
	switch {
	case p.help:
		return &Result{Action: ActionHelp, Config: *p.cfg}, nil
	case p.man:
		return &Result{Action: ActionMan, Config: *p.cfg}, nil
	case p.version:
		return &Result{Action: ActionVersion, Config: *p.cfg}, nil
	}

	for _, o := range p.opts {
		if o.hasFlag() && p.fs.Changed(o.name) {
			o.src, o.from = fromFlag, "--"+o.name
		}
	}
	if err := p.applyEnv(); err != nil {
		return nil, &UsageError{Err: err}
	}
	p.applyDeprecated()
	if err := p.parseText(); err != nil {
		return nil, &UsageError{Err: err}
	}
	p.validate()
	if len(p.problems) > 0 {
		// The values that did parse come back with the error, so that the
		// caller can report it in --error-file, as upstream does.
		return &Result{Action: ActionRun, Config: *p.cfg}, errors.Join(p.problems...)
	}
	return &Result{Action: ActionRun, Config: *p.cfg, Warnings: p.warnings}, nil
}

// applyEnv sets every option not given on the command line from the
// environment. It returns the values that could not be parsed, each naming
// its variable.
func (p *parser) applyEnv() error {
	var errs []error
	for _, o := range p.opts {
		names := o.envNames()
		var chosen string
		var set []string
		for _, name := range names {
			if p.env[name] == "" {
				continue
			}
			set = append(set, name)
			chosen = name // later names are older spellings and win
			if !strings.HasPrefix(name, "GITSYNC_") && o.rejected == "" {
				p.warn("environment variable $%s is deprecated, %s", name, p.envAdvice(o))
			}
		}
		if chosen == "" {
			continue
		}
		if o.src == fromFlag {
			// The flag wins, but a malformed variable is still an error,
			// as in upstream, which parses the environment first.
			if err := checkParses(o.value, p.env[chosen]); err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for environment variable $%s: %v", p.env[chosen], chosen, err))
			}
			continue
		}
		if len(set) > 1 && !allSame(p.env, set) {
			p.warn("environment variables %s all set %s; using $%s (older names win)", dollarList(set), o.label(), chosen)
		}
		var err error
		if es, ok := o.value.(envSetter); ok {
			err = es.setEnv(p.env[chosen])
		} else {
			err = o.value.Set(p.env[chosen])
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("invalid value %q for environment variable $%s: %v", p.env[chosen], chosen, err))
			continue
		}
		o.src, o.from = fromEnv, "$"+chosen
	}
	return errors.Join(errs...)
}

// envAdvice says what to use instead of a deprecated variable of o.
func (p *parser) envAdvice(o *option) string {
	target := o
	if o.replaces != "" {
		target = p.byName[o.replaces]
	}
	if n := target.newEnvName(); n != "" {
		return "use $" + n + " instead"
	}
	return o.deprecated
}

// applyDeprecated warns about deprecated flags, rejects removed ones, and
// folds deprecated aliases into the settings they stand for.
func (p *parser) applyDeprecated() {
	for _, o := range p.opts {
		if o.src == fromDefault {
			continue
		}
		if o.rejected != "" {
			p.fail("%s is no longer supported, %s", o.from, o.rejected)
			continue
		}
		if o.deprecated != "" && o.src == fromFlag {
			p.warn("flag --%s is deprecated, %s", o.name, o.deprecated)
		}
		if o.apply == nil {
			continue
		}
		target := p.byName[o.replaces]
		if o.src < target.src {
			p.warn("%s is ignored because %s is set", o.from, target.from)
			continue
		}
		o.apply()
		target.src, target.from = o.src, o.from
	}
	p.applyBranchRev()
}

// applyBranchRev maps v3's --branch and --rev onto --ref: a branch with the
// revision empty or HEAD means that branch; a revision alone means that
// revision; any other combination is an error. A lone revision of HEAD (v3's
// default, which charts often still set) does not override a --ref given
// some other way.
func (p *parser) applyBranchRev() {
	branch, rev := p.byName["branch"], p.byName["rev"]
	level := fromDefault
	from := ""
	if p.branch != "" {
		level, from = branch.src, branch.from
	}
	if p.rev != "" && rev.src > level {
		level, from = rev.src, rev.from
	}
	if level == fromDefault {
		return
	}
	var ref string
	switch {
	case p.branch != "" && (p.rev == "" || p.rev == "HEAD"):
		ref = p.branch
	case p.branch == "":
		ref = p.rev
	default:
		p.fail("%s and %s cannot both be set unless the revision is HEAD; use --ref", branch.from, rev.from)
		return
	}
	target := p.byName["ref"]
	if p.branch == "" && p.rev == "HEAD" && target.src != fromDefault {
		return
	}
	if level < target.src {
		p.warn("%s is ignored because %s is set", from, target.from)
		return
	}
	p.cfg.Ref = ref
	target.src, target.from = level, from
}

// parseText parses the settings kept as raw text until now because their
// values may hold secrets (pflag would quote them in its errors).
func (p *parser) parseText() error {
	var errs []error
	entries, err := gitconfig.Parse(p.gitConfig)
	if err != nil {
		errs = append(errs, fmt.Errorf("%s: %w", p.nameOf("git-config"), err))
	}
	p.cfg.GitConfig = entries
	for i, s := range p.gitConfigAdd {
		add, err := gitconfig.Parse(s)
		if err == nil && len(add) != 1 && p.byName["git-config-add"].src == fromFlag {
			err = fmt.Errorf("want exactly one key:value, got %d (escape commas in values as \\,)", len(add))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (use %d): %w", p.nameOf("git-config-add"), i+1, err))
			continue
		}
		for _, e := range add {
			e.Add = true
			p.cfg.GitConfig = append(p.cfg.GitConfig, e)
		}
	}
	for i, s := range p.credentials {
		creds, err := parseCredentials(s)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s (use %d): %w", p.nameOf("credential"), i+1, err))
			continue
		}
		p.cfg.Credentials = append(p.cfg.Credentials, creds...)
	}
	return errors.Join(errs...)
}

// nameOf names the option for a message: its flag, followed by the
// variable or deprecated flag the value came from when that differs.
func (p *parser) nameOf(name string) string {
	o := p.byName[name]
	flag := o.label()
	if o.from == "" || o.from == flag {
		return flag
	}
	return flag + " (from " + o.from + ")"
}

// warn records a deprecation notice.
func (p *parser) warn(format string, args ...any) {
	p.warnings = append(p.warnings, fmt.Sprintf(format, args...))
}

// fail records a validation problem.
func (p *parser) fail(format string, args ...any) {
	p.problems = append(p.problems, fmt.Errorf(format, args...))
}

// allSame reports whether the variables named all have the same value.
func allSame(env map[string]string, names []string) bool {
	for _, n := range names[1:] {
		if env[n] != env[names[0]] {
			return false
		}
	}
	return true
}

// dollarList formats variable names as "$A, $B".
func dollarList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = "$" + n
	}
	return strings.Join(out, ", ")
}
