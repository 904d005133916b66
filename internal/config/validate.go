package config

import (
	"errors"
	"fmt"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gitsync/internal/secret"
)

// Limits enforced by validation.
const (
	minPeriod      = 10 * time.Millisecond // --period, --init-period, --sync-timeout
	minHookTimeout = time.Second           // hook and webhook timeouts and backoffs
)

// reservedRootNames are the names inside --root that git-sync keeps for
// itself (the repository, the worktrees, private state and the lock file).
// --link, --touch-file and --error-file must not point into them.
var reservedRootNames = []string{".git", ".worktrees", ".git-sync", ".git-sync.lock"}

// IsCommitHash reports whether ref is a full commit hash: 40 (SHA-1) or 64
// (SHA-256) lower-case hex digits. Such a ref is fetched by hash and, once
// synced, never changes. Abbreviated hashes are not hashes here; they are
// passed to git as names and fail there with git's own message.
func IsCommitHash(ref string) bool {
	if len(ref) != 40 && len(ref) != 64 {
		return false
	}
	for _, c := range ref {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// validate checks the assembled configuration, derives the settings that
// default to others, and records every problem found.
func (p *parser) validate() {
	c := p.cfg

	// What to sync and where.
	if c.Repo == "" {
		p.fail("--repo is required")
	} else if strings.HasPrefix(c.Repo, "-") {
		p.fail(`%s must not begin with "-"`, p.nameOf("repo"))
	}
	if c.Ref == "" {
		p.fail("%s must not be empty", p.nameOf("ref"))
	} else if strings.HasPrefix(c.Ref, "-") {
		p.fail(`%s must not begin with "-", got %q`, p.nameOf("ref"), c.Ref)
	}
	if c.Root == "" {
		p.fail("--root is required")
	}
	p.validateAuth() // before the link is derived: it strips credentials from Repo

	// An empty --link, however it was given, means the default: upstream
	// treats it so, and charts pass "--link=" when no link is configured.
	if c.Link == "" && c.Repo != "" {
		c.Link = repoLeaf(c.Repo)
		p.byName["link"].from = "--repo"
	}
	p.validateRootPaths()

	// Timing and failures.
	p.atLeast("period", c.Period, minPeriod)
	if c.InitPeriod == 0 {
		c.InitPeriod = c.Period
	} else {
		p.atLeast("init-period", c.InitPeriod, minPeriod)
	}
	p.atLeast("sync-timeout", c.SyncTimeout, minPeriod)
	if p.byName["init-max-failures"].src == fromDefault {
		c.InitMaxFailures = c.MaxFailures
	}
	p.atLeast("stale-worktree-timeout", c.StaleWorktreeTimeout, 0)
	if c.KeepWorktrees < 0 {
		p.fail("%s must not be negative, got %d", p.nameOf("keep-worktrees"), c.KeepWorktrees)
	}
	if p.syncOnSignal != "" {
		sig, err := parseSignal(p.syncOnSignal)
		if err != nil {
			p.fail("%s: %v", p.nameOf("sync-on-signal"), err)
		}
		c.SyncOnSignal = sig
	}

	// Git.
	if c.Depth < 0 {
		p.fail("%s must not be negative, got %d", p.nameOf("depth"), c.Depth)
	}
	p.oneOf("submodules", c.Submodules, SubmodulesRecursive, SubmodulesShallow, SubmodulesOff)
	p.oneOf("git-gc", c.GitGC, GCAuto, GCAlways, GCAggressive, GCOff)
	p.validateGit()

	// Hooks.
	p.atLeast("exechook-timeout", c.ExecHook.Timeout, minHookTimeout)
	p.atLeast("exechook-backoff", c.ExecHook.Backoff, minHookTimeout)
	p.atLeast("pre-publish-exechook-timeout", c.PrePublishHook.Timeout, minHookTimeout)
	p.atLeast("pre-publish-exechook-backoff", c.PrePublishHook.Backoff, minHookTimeout)
	p.atLeast("publish-gate-timeout", c.PublishGate.Timeout, minHookTimeout)
	p.atLeast("webhook-timeout", c.Webhook.Timeout, minHookTimeout)
	p.atLeast("webhook-backoff", c.Webhook.Backoff, minHookTimeout)
	if c.Webhook.SuccessStatus == -1 {
		c.Webhook.SuccessStatus = 0
	}
	if s := c.Webhook.SuccessStatus; s != 0 && (s < 100 || s > 599) {
		p.fail("%s must be an HTTP status (100-599), or 0 or -1 for fire and forget; got %d", p.nameOf("webhook-success-status"), s)
	}
	if c.Webhook.URL != "" {
		p.httpURL("webhook-url", c.Webhook.URL)
		if c.Webhook.Method == "" {
			p.fail("%s must not be empty", p.nameOf("webhook-method"))
		}
	}

	p.validateVerify()

	// HTTP endpoint and logging.
	if c.HTTPMetrics && c.HTTPBind == "" {
		p.fail("%s needs --http-bind", p.nameOf("http-metrics"))
	}
	if c.HTTPPprof && c.HTTPBind == "" {
		p.fail("%s needs --http-bind", p.nameOf("http-pprof"))
	}
	p.atLeast("max-staleness", c.MaxStaleness, 0)
	p.atLeast("failure-backoff-max", c.FailureBackoffMax, 0)
	if c.PeriodJitter < 0 || c.PeriodJitter >= 1 || c.PeriodJitter != c.PeriodJitter {
		p.fail("%s must be at least 0 and below 1, got %v", p.nameOf("period-jitter"), c.PeriodJitter)
	}
	if c.MaxStaleness > 0 && c.HTTPBind == "" {
		p.fail("%s needs --http-bind", p.nameOf("max-staleness"))
	}
	if c.WebhookBind != "" && c.SyncTokenFile == "" && c.WebhookSecretFile == "" {
		p.fail("%s needs --sync-token-file or --webhook-secret-file", p.nameOf("webhook-bind"))
	}
	if (c.SyncTokenFile != "" || c.WebhookSecretFile != "") && c.HTTPBind == "" && c.WebhookBind == "" {
		p.fail("--sync-token-file and --webhook-secret-file need --http-bind or --webhook-bind")
	}
	if c.ServeMaxRequests < 0 {
		p.fail("%s must not be negative, got %d", p.nameOf("serve-max-requests"), c.ServeMaxRequests)
	}
	if c.ServeTokenFile != "" && c.ServeBind == "" {
		p.fail("%s needs --serve-bind", p.nameOf("serve-token-file"))
	}
	if c.Verbosity < 0 {
		p.fail("%s must not be negative, got %d", p.nameOf("verbose"), c.Verbosity)
	}
}

// validateAuth checks the combinations of authentication settings and moves
// credentials written into an http(s) --repo URL into Username and Password.
func (p *parser) validateAuth() {
	c := p.cfg
	hasPassword := !c.Password.IsZero()
	hasPasswordFile := c.PasswordFile != ""
	user, pass, stripped, hasUserInfo := splitRepoCredentials(c.Repo)

	if c.Username != "" {
		switch {
		case hasPassword && hasPasswordFile:
			p.fail("%s needs exactly one of $GITSYNC_PASSWORD and --password-file, not both", p.nameOf("username"))
		case !hasPassword && !hasPasswordFile:
			p.fail("%s needs $GITSYNC_PASSWORD or --password-file", p.nameOf("username"))
		}
		if hasUserInfo {
			p.fail("%s cannot be combined with credentials in --repo", p.nameOf("username"))
		}
	} else {
		if hasPassword {
			p.fail("%s requires --username", p.nameOf("password"))
		}
		if hasPasswordFile {
			p.fail("%s requires --username", p.nameOf("password-file"))
		}
		if hasUserInfo && pass != "" {
			c.Username, c.Password, c.Repo = user, secret.New(pass), stripped
		}
	}

	if c.AskpassURL != "" {
		p.httpURL("askpass-url", c.AskpassURL)
	}

	g := &c.GitHubApp
	hasKey := g.PrivateKeyFile != "" || !g.PrivateKey.IsZero()
	if g.PrivateKeyFile != "" && !g.PrivateKey.IsZero() {
		p.fail("%s and %s cannot both be set", p.nameOf("github-app-private-key-file"), p.nameOf("github-app-private-key"))
	}
	if g.ApplicationID < 0 {
		p.fail("%s must not be negative", p.nameOf("github-app-application-id"))
	}
	if g.InstallationID < 0 {
		p.fail("%s must not be negative", p.nameOf("github-app-installation-id"))
	}
	if hasKey {
		if (g.ApplicationID != 0) == (g.ClientID != "") {
			p.fail("GitHub App authentication needs exactly one of --github-app-application-id and --github-app-client-id")
		}
		if g.InstallationID == 0 {
			p.fail("GitHub App authentication needs --github-app-installation-id")
		}
		if c.Username != "" || hasPassword || hasPasswordFile {
			p.fail("GitHub App authentication cannot be combined with --username, $GITSYNC_PASSWORD or --password-file")
		}
	} else if g.ApplicationID != 0 || g.ClientID != "" || g.InstallationID != 0 {
		p.fail("--github-app-application-id, --github-app-client-id and --github-app-installation-id need a private key " +
			"(--github-app-private-key-file or $GITSYNC_GITHUB_APP_PRIVATE_KEY)")
	}
	if !strings.HasSuffix(g.BaseURL, "/") {
		g.BaseURL += "/"
	}
	p.httpURL("github-base-url", g.BaseURL)
}

// splitRepoCredentials finds a username and password written into an
// http(s) URL. stripped is repo with the user information removed and
// everything else left byte for byte as it was. Other kinds of URL (ssh://
// user@host names an ssh login, not a credential) are never split.
func splitRepoCredentials(repo string) (user, pass, stripped string, ok bool) {
	scheme, rest, found := strings.Cut(repo, "://")
	if !found {
		return "", "", repo, false
	}
	if s := strings.ToLower(scheme); s != "http" && s != "https" {
		return "", "", repo, false
	}
	end := strings.IndexAny(rest, "/?#")
	if end < 0 {
		end = len(rest)
	}
	at := strings.LastIndex(rest[:end], "@")
	if at < 0 {
		return "", "", repo, false
	}
	u, err := url.Parse(repo)
	if err != nil || u.User == nil {
		return "", "", repo, false
	}
	pass, _ = u.User.Password()
	return u.User.Username(), pass, scheme + "://" + rest[at+1:], true
}

// repoLeaf returns the last path element of a repository URL or path, the
// default --link: "https://host/org/dags.git/" gives "dags.git", as do
// "git@host:org/dags.git", "git@host:dags.git" and "file:///srv/dags.git".
func repoLeaf(repo string) string {
	s := strings.TrimRight(repo, "/")
	if i := strings.LastIndexAny(s, "/:"); i >= 0 {
		s = s[i+1:]
	}
	return s
}

// validateRootPaths checks --link, --touch-file and --error-file against
// the names git-sync reserves in --root and against each other.
func (p *parser) validateRootPaths() {
	c := p.cfg
	base := filepath.Base(filepath.Clean(c.Link))
	switch {
	case c.Link == "" && c.Repo == "":
		// Nothing to derive it from; the missing --repo is reported.
	case c.Link == "":
		// --repo has no last element to derive it from (e.g. "/").
		p.fail("%s must not be empty", p.nameOf("link"))
	case base == "." || base == ".." || base == "/":
		p.fail("%s must name a path for the symlink, not %q", p.nameOf("link"), c.Link)
	default:
		p.checkInRoot("link", c.Link)
	}
	if c.TouchFile != "" {
		p.checkInRoot("touch-file", c.TouchFile)
	}
	if c.ErrorFile != "" {
		p.checkInRoot("error-file", c.ErrorFile)
	}
	names := []string{"link", "touch-file", "error-file"}
	values := []string{c.Link, c.TouchFile, c.ErrorFile}
	for i := range names {
		for j := i + 1; j < len(names); j++ {
			if values[i] != "" && values[j] != "" && p.underRoot(values[i]) == p.underRoot(values[j]) {
				p.fail("%s and %s must not name the same path", p.nameOf(names[i]), p.nameOf(names[j]))
			}
		}
	}
}

// underRoot returns path made absolute against --root, lexically.
func (p *parser) underRoot(path string) string {
	if filepath.IsAbs(path) {
		return filepath.Clean(path)
	}
	root, err := filepath.Abs(p.cfg.Root)
	if err != nil {
		return filepath.Clean(path)
	}
	return filepath.Join(root, path)
}

// checkInRoot fails when the path named by option name (relative paths are
// under --root) is --root itself or lies inside one of git-sync's reserved
// names there. Absolute paths are compared lexically with --root.
func (p *parser) checkInRoot(name, path string) {
	rel := filepath.Clean(path)
	if filepath.IsAbs(path) {
		if p.cfg.Root == "" {
			return
		}
		root, err := filepath.Abs(p.cfg.Root)
		if err != nil {
			return
		}
		if rel, err = filepath.Rel(root, rel); err != nil {
			return
		}
	}
	if rel == "." {
		p.fail("%s must not be --root itself", p.nameOf(name))
		return
	}
	first, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
	if slices.Contains(reservedRootNames, first) {
		p.fail("%s must not be inside %q, which git-sync reserves in --root", p.nameOf(name), first)
	}
}

// validateGit resolves --git to an absolute path.
func (p *parser) validateGit() {
	c := p.cfg
	if c.Git == "" {
		p.fail("%s must not be empty", p.nameOf("git"))
		return
	}
	path, err := exec.LookPath(c.Git)
	if err != nil {
		var ee *exec.Error
		if errors.As(err, &ee) {
			err = ee.Err
		}
		p.fail("%s %q not found: %v", p.nameOf("git"), c.Git, err)
		return
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		p.fail("%s %q: %v", p.nameOf("git"), c.Git, err)
		return
	}
	c.Git = abs
}

// atLeast fails when the duration option name is below least.
func (p *parser) atLeast(name string, d, least time.Duration) {
	if d >= least {
		return
	}
	if least == 0 {
		p.fail("%s must not be negative, got %v", p.nameOf(name), d)
		return
	}
	p.fail("%s must be at least %v, got %v", p.nameOf(name), least, d)
}

// oneOf fails when option name's value is not one of allowed.
func (p *parser) oneOf(name, value string, allowed ...string) {
	if !slices.Contains(allowed, value) {
		p.fail("%s must be one of %s; got %q", p.nameOf(name), strings.Join(allowed, ", "), value)
	}
}

// httpURL fails when option name's value is not an absolute http(s) URL.
// The message does not repeat the value: URLs may carry credentials.
func (p *parser) httpURL(name, value string) {
	u, err := url.Parse(value)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		p.fail("%s must be an absolute http or https URL", p.nameOf(name))
	}
}

// signalsByName maps the names --sync-on-signal accepts, without the "SIG"
// prefix, to signals.
var signalsByName = map[string]syscall.Signal{
	"HUP": syscall.SIGHUP, "INT": syscall.SIGINT, "QUIT": syscall.SIGQUIT, "ILL": syscall.SIGILL,
	"TRAP": syscall.SIGTRAP, "ABRT": syscall.SIGABRT, "BUS": syscall.SIGBUS, "FPE": syscall.SIGFPE,
	"KILL": syscall.SIGKILL, "USR1": syscall.SIGUSR1, "SEGV": syscall.SIGSEGV, "USR2": syscall.SIGUSR2,
	"PIPE": syscall.SIGPIPE, "ALRM": syscall.SIGALRM, "TERM": syscall.SIGTERM, "CHLD": syscall.SIGCHLD,
	"CONT": syscall.SIGCONT, "STOP": syscall.SIGSTOP, "TSTP": syscall.SIGTSTP, "TTIN": syscall.SIGTTIN,
	"TTOU": syscall.SIGTTOU, "URG": syscall.SIGURG, "XCPU": syscall.SIGXCPU, "XFSZ": syscall.SIGXFSZ,
	"VTALRM": syscall.SIGVTALRM, "PROF": syscall.SIGPROF, "WINCH": syscall.SIGWINCH, "IO": syscall.SIGIO,
	"SYS": syscall.SIGSYS,
}

// maxSignal is the highest signal number Linux delivers (the last real-time
// signal).
const maxSignal = 64

// parseSignal reads a signal given by name, with or without the SIG
// prefix and in any case, or by number.
func parseSignal(s string) (syscall.Signal, error) {
	var sig syscall.Signal
	if n, err := strconv.Atoi(s); err == nil {
		if n < 1 || n > maxSignal {
			return 0, fmt.Errorf("signal number %d is out of range (1-%d)", n, maxSignal)
		}
		sig = syscall.Signal(n)
	} else {
		name := strings.TrimPrefix(strings.ToUpper(s), "SIG")
		var ok bool
		if sig, ok = signalsByName[name]; !ok {
			return 0, fmt.Errorf("unknown signal %q (use a name like SIGHUP or HUP, or a number like 1)", s)
		}
	}
	if why, bad := unusableSignals[sig]; bad {
		return 0, fmt.Errorf("%s (signal %d) cannot trigger syncs: %s", signalName(sig), int(sig), why)
	}
	return sig, nil
}

// unusableSignals are the signals --sync-on-signal rejects, with the
// reason. They are refused at startup because each would fail silently or
// constantly at run time.
var unusableSignals = map[syscall.Signal]string{
	syscall.SIGKILL: "it cannot be caught",
	syscall.SIGSTOP: "it cannot be caught",
	syscall.SIGTERM: "it stops git-sync",
	syscall.SIGINT:  "it stops git-sync",
	// Every git command git-sync runs sends it one on exit: each sync would
	// trigger the next, forever.
	syscall.SIGCHLD: "git-sync receives one whenever a child process (every git command) exits",
	// The Go runtime signals its own threads with SIGURG to preempt
	// goroutines, many times a second under load.
	syscall.SIGURG: "the Go runtime sends it to itself to preempt goroutines",
}

// signalName returns the SIG-prefixed name of sig, or "signal N" for a
// signal with no name in signalsByName.
func signalName(sig syscall.Signal) string {
	for name, s := range signalsByName {
		if s == sig {
			return "SIG" + name
		}
	}
	return fmt.Sprintf("signal %d", int(sig))
}

// validateVerify checks the signature options: a mode needs at least one key
// file, and key files without a mode would silently verify nothing.
func (p *parser) validateVerify() {
	c := p.cfg
	if c.VerifySignatures == "" {
		for _, name := range []string{"allowed-signers-file", "gpg-keyring-file"} {
			if p.byName[name].src != fromDefault {
				p.fail("%s needs --verify-signatures", p.nameOf(name))
			}
		}
		return
	}
	p.oneOf("verify-signatures", c.VerifySignatures, VerifyCommit, VerifyTag)
	if c.AllowedSignersFile == "" && c.GPGKeyringFile == "" {
		p.fail("%s needs --allowed-signers-file or --gpg-keyring-file", p.nameOf("verify-signatures"))
	}
	if c.VerifySignatures == VerifyTag && IsCommitHash(c.Ref) {
		p.fail("%s=tag needs --ref to name an annotated tag, not a commit hash", p.nameOf("verify-signatures"))
	}
}
