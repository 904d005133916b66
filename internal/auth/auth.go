package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"gitsync/internal/config"
	"gitsync/internal/redact"
	"gitsync/internal/secret"
)

// Metrics counts askpass calls and GitHub App token refreshes (status is
// "success" or "error") and follows the kept SSH connection: whether one
// is up, and each renewal with its reason.
type Metrics interface {
	AskpassCall(status string)
	GitHubAppRefresh(status string)
	SSHKeptConnection(up bool)
	SSHKeptConnectionRenewal(reason string)
}

// Options are New's dependencies.
type Options struct {
	// Log receives debug lines (never secrets); nil discards them.
	Log *slog.Logger
	// Metrics counts calls; nil counts nothing.
	Metrics Metrics
	// Self is the absolute path of the git-sync executable, which git runs as
	// its credential helper.
	Self string
	// Env is git-sync's own environment (os.Environ()), consulted for a
	// user-set GIT_SSH_COMMAND.
	Env []string
	// HTTPClient is used for the askpass URL and the GitHub API; nil means a
	// client with a 30 s timeout.
	HTTPClient *http.Client
	// TempDir is where New prefers to create its private directory; empty
	// means os.TempDir() ($TMPDIR or /tmp). See listen for when another
	// directory is used.
	TempDir string
}

// Auth holds git-sync's credentials and serves them to git's credential
// helper. Its methods are safe for concurrent use.
type Auth struct {
	log     *slog.Logger
	metrics Metrics
	client  *http.Client
	cfg     Config

	dir    string   // owner-only directory holding the sockets
	lock   *os.File // held (flock) while dir is in use
	sock   string
	ln     net.Listener
	kept   *keptSSH // the kept SSH connection, or nil
	helper string   // credential.helper value
	sshCmd string
	// sshRequired are the files ssh needs before a sync can work (see
	// planSSHFiles), checked by every Refresh.
	sshRequired []sshFile
	cookie      string // http.cookieFile, or ""
	repoKey     urlKey
	repoOK      bool // repo is a URL credentials can be keyed on
	app         *githubApp
	credKeys    []urlKey

	logRequests bool // log each helper request (verbosity 5 and up)

	mu         sync.Mutex      // guards the credentials below
	staticPass secret.Secret   // --repo password ($GITSYNC_PASSWORD or --password-file)
	askUser    string          // last askpass answer
	askPass    secret.Secret   //
	appToken   secret.Secret   // GitHub App installation token
	appExpires time.Time       //
	credPass   []secret.Secret // per cfg.Credentials

	serveDone chan struct{} // closed when serve returns
	connWG    sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

type nopMetrics struct{}

func (nopMetrics) AskpassCall(string)              {}
func (nopMetrics) GitHubAppRefresh(string)         {}
func (nopMetrics) SSHKeptConnection(bool)          {}
func (nopMetrics) SSHKeptConnectionRenewal(string) {}

// New checks what can never work (credential URLs, values git's credential
// protocol cannot carry, the GitHub App key, a missing cookie file) and,
// when there are credentials to serve, creates an owner-only directory and
// starts serving the credential helper on a unix socket there. Files that
// may still appear (password files, ssh keys, known hosts) are left to
// Refresh. Call Close to stop.
func New(cfg Config, opts Options) (*Auth, error) {
	a := &Auth{
		log:       opts.Log,
		metrics:   opts.Metrics,
		client:    opts.HTTPClient,
		cfg:       cfg,
		serveDone: make(chan struct{}),
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.metrics == nil {
		a.metrics = nopMetrics{}
	}
	if a.client == nil {
		a.client = &http.Client{Timeout: 30 * time.Second}
	}
	if opts.Self == "" || !filepath.IsAbs(opts.Self) {
		return nil, fmt.Errorf("auth: the path of the git-sync executable must be absolute, got %q", opts.Self)
	}
	a.logRequests = a.log.Enabled(context.Background(), slog.Level(-5))

	if k, err := parseURLKey(cfg.Repo); err == nil {
		a.repoKey, a.repoOK = k, true
	}
	if err := checkCredentialValue(cfg.Username); err != nil {
		return nil, fmt.Errorf("--username: %w", err)
	}
	if err := checkCredentialValue(cfg.Password.Reveal()); err != nil {
		return nil, fmt.Errorf("$GITSYNC_PASSWORD: %w", err)
	}
	a.staticPass = cfg.Password
	a.credPass = make([]secret.Secret, len(cfg.Credentials))
	for i, c := range cfg.Credentials {
		k, err := parseURLKey(c.URL)
		if err != nil {
			return nil, fmt.Errorf("--credential %d: url: %w", i+1, err)
		}
		if err := checkCredentialValue(c.Username); err != nil {
			return nil, fmt.Errorf("--credential %s: username: %w", k, err)
		}
		if err := checkCredentialValue(c.Password.Reveal()); err != nil {
			return nil, fmt.Errorf("--credential %s: password: %w", k, err)
		}
		a.credKeys = append(a.credKeys, k)
		a.credPass[i] = c.Password
	}
	// Password files, key files and the known-hosts file are first looked
	// at by Refresh, before the first sync: one that is not there yet (a
	// secret mounted late) fails that sync, counted against --max-failures
	// like any other sync error, instead of stopping git-sync at startup.
	sshRepo := isSSHRepo(cfg.Repo)
	keys, required, notes, err := planSSHFiles(cfg.SSHKeyFiles, cfg.SSHKnownHosts, cfg.SSHKnownHostsFile, sshRepo, fileExists)
	if err != nil {
		return nil, err
	}
	a.sshRequired = required
	for _, n := range notes {
		a.log.Log(context.Background(), slog.Level(-2), n)
	}
	sshOpts := SSHOptions{
		Base:           lookupEnv(opts.Env, "GIT_SSH_COMMAND"),
		KeyFiles:       keys,
		KnownHosts:     cfg.SSHKnownHosts,
		KnownHostsFile: cfg.SSHKnownHostsFile,
		Verbose:        sshVerbosity(a.verbosity()),
	}
	dest, keep := parseSSHDest(cfg.Repo)
	if keep && !sshSharingPossible(sshOpts.Base) {
		keep = false
		a.log.Log(context.Background(), levelMaster, "GIT_SSH_COMMAND sets up connection sharing itself; git-sync keeps no SSH connection of its own")
	}

	if cfg.CookieFile != "" {
		if !fileExists(cfg.CookieFile) {
			return nil, fmt.Errorf("--cookie-file: %s: file not found", cfg.CookieFile)
		}
		a.cookie = cfg.CookieFile
	}

	if cfg.GitHubApp.Enabled() {
		app, err := newGitHubApp(cfg.GitHubApp, os.ReadFile)
		if err != nil {
			return nil, err
		}
		a.app = app
	}

	serveCreds := cfg.hasCredentials()
	if !serveCreds && !keep {
		// Nothing to serve and no SSH connection to keep: no socket, no
		// directory, and git gets no helper at all (so it fails at
		// once, without asking anyone).
		a.sshCmd = SSHCommand(sshOpts)
		close(a.serveDone)
		return a, nil
	}
	nameLen := len(socketName)
	if keep {
		nameLen = max(nameLen, controlNameMaxLen)
	}
	if err := a.makeDir(opts.TempDir, nameLen, serveCreds); err != nil {
		return nil, err
	}
	if keep {
		sshOpts.ControlDir = a.dir
		var files []sshFile
		for _, k := range keys {
			files = append(files, sshFile{"--ssh-key-file", k})
		}
		if cfg.SSHKnownHosts && cfg.SSHKnownHostsFile != "" {
			files = append(files, sshFile{"--ssh-known-hosts-file", cfg.SSHKnownHostsFile})
		}
		masterEnv := append(append([]string{}, opts.Env...), "SSH_ASKPASS_REQUIRE=never")
		a.kept = newKeptSSH(a.log, a.metrics, a.dir, sshOpts, dest, masterEnv, files)
	}
	a.sshCmd = SSHCommand(sshOpts)
	if !serveCreds {
		close(a.serveDone)
		return a, nil
	}
	a.helper = "!" + shellQuote(opts.Self) + " " + HelperArg + " " + shellQuote(a.sock)
	go a.serve()
	return a, nil
}

// verbosity recovers git-sync's -v level from the logger (level -N).
func (a *Auth) verbosity() int {
	for v := 9; v > 0; v-- {
		if a.log.Enabled(context.Background(), slog.Level(-v)) {
			return v
		}
	}
	return 0
}

// Dir is the owner-only directory New created for the credential socket
// and the kept SSH connection's socket (removed by Close), or "" when
// there is neither.
func (a *Auth) Dir() string { return a.dir }

// OpenSSHSession runs command (e.g. "git-upload-pack '/repo'") on the
// --repo host as a new session on the kept SSH connection, with env
// ("NAME=value") passed as ssh's SendEnv would (only GIT_PROTOCOL gets
// through the master). It returns ErrNoKeptSSH when no master is up (the
// caller then runs git, whose ssh connects on its own); other errors mean
// the master refused or failed (see MuxRefusedError). This is how an idle
// poll asks the server without starting git, a shell or ssh on this side.
func (a *Auth) OpenSSHSession(ctx context.Context, command string, env []string) (*MuxSession, error) {
	if a.kept == nil {
		return nil, ErrNoKeptSSH
	}
	sock := a.kept.socket()
	if sock == "" {
		return nil, ErrNoKeptSSH
	}
	return OpenMuxSession(ctx, sock, command, env)
}

// Refresh brings the credentials up to date before a sync: it checks that
// the files ssh needs are there, re-reads the password files, calls the
// askpass URL and renews the GitHub App token when it expires within 30 s. On error the previous values stay in use; the
// error never contains a secret.
func (a *Auth) Refresh(ctx context.Context) error {
	var errs []error
	if err := checkSSHFiles(a.sshRequired, fileExists); err != nil {
		errs = append(errs, err)
	} else if a.kept != nil {
		a.kept.ensure(ctx)
	}
	if err := a.readPasswordFiles(); err != nil {
		errs = append(errs, err)
	}
	if a.cfg.AskpassURL != "" {
		user, pass, err := callAskpass(ctx, a.client, a.cfg.AskpassURL)
		if err != nil {
			a.metrics.AskpassCall("error")
			errs = append(errs, err)
		} else {
			a.metrics.AskpassCall("success")
			a.mu.Lock()
			a.askUser, a.askPass = user, pass
			a.mu.Unlock()
			a.log.Log(ctx, slog.Level(-3), "called askpass URL", "url", redact.Text(a.cfg.AskpassURL))
		}
	}
	if a.app != nil {
		a.mu.Lock()
		renew := a.appToken.IsZero() || time.Until(a.appExpires) < appTokenMargin
		a.mu.Unlock()
		if renew {
			tok, exp, err := a.app.token(ctx, a.client, time.Now())
			if err != nil {
				a.metrics.GitHubAppRefresh("error")
				errs = append(errs, err)
			} else {
				a.metrics.GitHubAppRefresh("success")
				a.mu.Lock()
				a.appToken, a.appExpires = tok, exp
				a.mu.Unlock()
				a.log.Log(ctx, slog.Level(-2), "renewed GitHub App token", "expires", exp)
			}
		}
	}
	return errors.Join(errs...)
}

func (a *Auth) readPasswordFiles() error {
	var errs []error
	if f := a.cfg.PasswordFile; f != "" {
		p, err := readPasswordFile(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("--password-file: %w", err))
		} else {
			a.mu.Lock()
			a.staticPass = p
			a.mu.Unlock()
		}
	}
	for i, c := range a.cfg.Credentials {
		if c.PasswordFile == "" {
			continue
		}
		p, err := readPasswordFile(c.PasswordFile)
		if err != nil {
			errs = append(errs, fmt.Errorf("--credential %s: password-file: %w", redact.Text(c.URL), err))
			continue
		}
		a.mu.Lock()
		a.credPass[i] = p
		a.mu.Unlock()
	}
	return errors.Join(errs...)
}

// lookup finds the credentials for a request (see the package doc).
func (a *Auth) lookup(r urlKey) (username string, password secret.Secret, ok bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.repoOK && a.repoKey == r {
		switch {
		case !a.appToken.IsZero():
			return GitHubAppUsername, a.appToken, true
		case !a.askPass.IsZero():
			return a.askUser, a.askPass, true
		case a.cfg.Username != "" && !a.staticPass.IsZero():
			return a.cfg.Username, a.staticPass, true
		}
	}
	if i := bestCredential(a.credKeys, r); i >= 0 && !a.credPass[i].IsZero() {
		return a.cfg.Credentials[i].Username, a.credPass[i], true
	}
	return "", secret.Secret{}, false
}

// GitConfig returns the entries for git-sync's private global git config:
// git-sync as git's only credential helper (no helper at all when there are
// no credentials), credentials keyed on the full URL, and the cookie file
// when --cookie-file is set. No secrets.
func (a *Auth) GitConfig() []config.GitConfigEntry {
	entries := []config.GitConfigEntry{
		// An empty value clears helpers configured before this file.
		{Key: "credential.helper", Value: ""},
	}
	if a.helper != "" {
		entries = append(entries, config.GitConfigEntry{Key: "credential.helper", Value: a.helper, Add: true})
	}
	entries = append(entries, config.GitConfigEntry{Key: "credential.useHttpPath", Value: "true"})
	if a.cookie != "" {
		entries = append(entries, config.GitConfigEntry{Key: "http.cookieFile", Value: a.cookie})
	}
	return entries
}

// Env returns KEY=VALUE entries for every git child and exec hook. They must
// come after git-sync's own environment (later entries win in os/exec).
// No secrets.
func (a *Auth) Env() []string {
	return []string{
		"GIT_TERMINAL_PROMPT=0",
		// Set but empty: git then uses no askpass program at all (it does
		// not fall back to core.askPass or SSH_ASKPASS).
		"GIT_ASKPASS=",
		"SSH_ASKPASS_REQUIRE=never",
		"GIT_SSH_COMMAND=" + a.sshCmd,
	}
}

// Close ends the kept SSH connection, stops serving the credential
// helper, waits for requests in flight and removes the private directory.
// It may be called more than once.
func (a *Auth) Close() error {
	a.closeOnce.Do(func() {
		if a.kept != nil {
			a.kept.close()
		}
		var err error
		if a.ln != nil {
			err = a.ln.Close()
			<-a.serveDone
			a.connWG.Wait()
		}
		if a.dir != "" {
			if rerr := os.RemoveAll(a.dir); rerr != nil {
				err = errors.Join(err, rerr)
			}
			a.lock.Close()
		}
		a.closeErr = err
	})
	return a.closeErr
}

// fileExists reports whether path can be stat'ed.
func fileExists(path string) bool { _, err := os.Stat(path); return err == nil }

// lookupEnv returns the last value of name in env, or "".
func lookupEnv(env []string, name string) string {
	val := ""
	for _, kv := range env {
		if k, v, ok := strings.Cut(kv, "="); ok && k == name {
			val = v
		}
	}
	return val
}
