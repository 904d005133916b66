package config

import (
	"strings"
	"time"

	"github.com/spf13/pflag"
)

// source says where an option's value came from. Higher beats lower.
type source int

const (
	fromDefault source = iota
	fromEnv
	fromFlag
)

// option describes one setting: its flag, its environment variables, its
// default and its documentation. The table built by options is the single
// place each setting is described; parsing, the environment layer, --help and
// --man are all driven from it.
type option struct {
	name  string // flag name without "--"; env-only options use it for their variable names
	short string // one-letter shorthand, "" for none
	arg   string // placeholder for the value in help, "" for booleans
	value pflag.Value
	def   string // default as shown in help, "" when there is none worth showing
	usage string // what the setting means, for --help and --man
	more  string // further detail for --man only
	topic string

	// envOnly options are documented as environment variables. They have no
	// command-line flag unless they also carry a deprecated message, in which
	// case the flag exists as a deprecated spelling ($GITSYNC_PASSWORD and
	// --password).
	envOnly bool
	// noEnv options are read from the command line only. Otherwise the
	// option reads $GITSYNC_<NAME> and $GIT_SYNC_<NAME> (unless it is a
	// deprecated alias, see replaces), followed by legacyEnv.
	noEnv     bool
	legacyEnv []string

	// deprecated is the advice logged when a deprecated spelling is used
	// ("use --period instead"). Non-empty marks the flag as deprecated.
	deprecated string
	// replaces names the option a deprecated alias stands in for, and apply
	// copies the alias's value onto it. An alias given at the same or a
	// higher level (command line over environment) than its replacement wins.
	replaces string
	apply    func()
	// rejected options are accepted by the parser only to fail with advice.
	rejected string

	hidden bool // not listed in --help or --man (the "-?" spelling of --help)

	src  source
	from string // "--name" or "$VAR" the value came from, for messages
}

// envNames returns the variables the option reads, lowest priority first:
// when several are set, the last one set wins, so older spellings beat
// newer ones (charts that set both rely on that).
func (o *option) envNames() []string {
	var names []string
	if !o.noEnv && o.replaces == "" {
		key := strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
		names = append(names, "GITSYNC_"+key, "GIT_SYNC_"+key)
	}
	return append(names, o.legacyEnv...)
}

// newEnvName returns the option's current variable name, or "" if it has none.
func (o *option) newEnvName() string {
	for _, n := range o.envNames() {
		if strings.HasPrefix(n, "GITSYNC_") {
			return n
		}
	}
	return ""
}

// label names the option in messages: its flag, or its variable for
// environment-only options.
func (o *option) label() string {
	if !o.envOnly {
		return "--" + o.name
	}
	return "$" + o.newEnvName()
}

// hasFlag reports whether the option can be given on the command line.
func (o *option) hasFlag() bool { return !o.envOnly || o.deprecated != "" }

// Topics, in the order --help and --man list them.
const (
	topicRepo     = "Repository and ref"
	topicFiles    = "Local files"
	topicLoop     = "Sync loop"
	topicGit      = "Git"
	topicHooks    = "Hooks"
	topicVerify   = "Signature verification"
	topicAuth     = "Authentication"
	topicHTTP     = "HTTP endpoint"
	topicServe    = "Serving the repository (relay)"
	topicInfo     = "Logging and information"
	topicOldFlags = "Deprecated spellings"
)

var topicOrder = []string{topicRepo, topicFiles, topicLoop, topicGit, topicHooks, topicVerify, topicAuth, topicHTTP, topicServe, topicInfo, topicOldFlags}

// Defaults that appear in more than one place.
const (
	defaultSSHKeyFile        = "/etc/git-secret/ssh"
	defaultSSHKnownHostsFile = "/etc/git-secret/known_hosts"
	defaultCookieFile        = "/etc/git-secret/cookie_file"
	defaultGitHubBaseURL     = "https://api.github.com/"
)

// setDefaults fills c with the default of every setting.
func setDefaults(c *Config) {
	*c = Config{
		Ref:         "HEAD",
		Period:      10 * time.Second,
		SyncTimeout: 120 * time.Second,
		Depth:       1,
		Submodules:  SubmodulesRecursive,
		GitGC:       GCAlways,
		Git:         "git",
		ExecHook:    HookConfig{Timeout: 30 * time.Second, Backoff: 3 * time.Second},
		PrePublishHook: HookConfig{
			Timeout: 30 * time.Second,
			Backoff: 3 * time.Second,
		},
		PublishGate:      HookConfig{Timeout: time.Minute},
		ServeMaxRequests: 32,
		Webhook: WebhookConfig{
			Method:        "POST",
			SuccessStatus: 200,
			Timeout:       time.Second,
			Backoff:       3 * time.Second,
		},
		SSHKeyFiles:       []string{defaultSSHKeyFile},
		SSHKnownHosts:     true,
		SSHKnownHostsFile: defaultSSHKnownHostsFile,
		GitHubApp:         GitHubAppConfig{BaseURL: defaultGitHubBaseURL},
	}
}

// options builds the table of every setting, bound to p's storage.
func (p *parser) options() []*option {
	c := p.cfg
	return []*option{
		// Repository and ref.
		{
			name: "repo", arg: "URL", value: stringValue{&c.Repo}, topic: topicRepo,
			usage: "The repository to sync: any URL or path git understands (https://, ssh://, git://, file://, a local path, or scp-like git@host:org/repo). Required.",
			more: "A username and password written into an http(s) URL (https://user:pass@host/repo) are taken out of it and used as if given " +
				"with --username and $GITSYNC_PASSWORD; git-sync never logs them. Such a URL cannot be combined with --username.",
		},
		{
			name: "ref", arg: "REF", value: stringValue{&c.Ref}, def: "HEAD", topic: topicRepo,
			usage: "What to sync: HEAD (the remote's default branch), a branch name, a tag name, or a full commit hash.",
			more: "A tag, lightweight or annotated, publishes the commit it points to. A hash must be written in full (40 hex digits); " +
				"once a hash is synced there is nothing left to poll for, so git-sync stops fetching but keeps serving.",
		},
		{
			name: "depth", arg: "N", value: intValue{&c.Depth}, def: "1", topic: topicRepo,
			usage: "How many commits of history to fetch; 0 fetches the whole history.",
			more: "A change of depth takes effect at the next start, in both directions: a shallow repository is deepened or " +
				"unshallowed, and a smaller depth trims the published history.",
		},
		{
			name: "filter", arg: "SPEC", value: stringValue{&c.Filter}, topic: topicRepo,
			usage: "A partial-clone filter for git fetch, such as blob:none or tree:0; empty fetches every object.",
		},
		{
			name: "submodules", arg: "MODE", value: stringValue{&c.Submodules}, def: SubmodulesRecursive, topic: topicRepo,
			usage: "What to do with submodules: recursive (all levels), shallow (the top level only) or off.",
			more: "Submodules are updated only when the commit has a .gitmodules file. With --depth greater than 0 submodules are " +
				"fetched shallow too. Relative submodule URLs resolve against --repo.",
		},
		{
			name: "sparse-checkout-file", arg: "FILE", value: stringValue{&c.SparseCheckoutFile}, topic: topicRepo,
			usage: "A file in git's sparse-checkout format; only the paths it matches are checked out.",
			more:  "The file is used verbatim, in non-cone mode, for every worktree.",
		},

		// Local files.
		{
			name: "root", arg: "DIR", value: stringValue{&c.Root}, topic: topicFiles,
			usage: "git-sync's working directory, holding the repository and the published trees. Required.",
			more: "It is created if missing. If it holds anything that is not a healthy git-sync repository, its contents (never the " +
				"directory itself, which is often a mounted volume) are deleted. The names .git, .worktrees, .git-sync and " +
				".git-sync.lock inside it are reserved for git-sync.",
		},
		{
			name: "link", arg: "PATH", value: stringValue{&c.Link}, def: "the last element of --repo", topic: topicFiles,
			usage: "The symlink through which consumers read the published tree; relative paths are under --root.",
			more: "Its target is relative (the volume may be mounted elsewhere) and ends in the full commit hash. Missing parent " +
				"directories are created. An empty value means the default. It must not be \".\" or inside a reserved name.",
		},
		{
			name: "touch-file", arg: "PATH", value: stringValue{&c.TouchFile}, topic: topicFiles,
			usage: "A file whose modification time is set after every sync that publishes or confirms a commit; relative paths are under --root.",
			more:  "Everything the sync did (the new tree, the link, the pre-publish hook's output) is visible by the time the file is touched; post-publish hooks run after it. Idle polls do not touch it.",
		},
		{
			name: "error-file", arg: "PATH", value: stringValue{&c.ErrorFile}, topic: topicFiles,
			usage: "A file that receives the last error as a JSON object; relative paths are under --root.",
			more:  "It is replaced atomically on every logged error, kept when git-sync exits on failure, and deleted by the next success.",
		},
		{
			name: "stale-worktree-timeout", arg: "DURATION", value: durationValue{&c.StaleWorktreeTimeout}, def: "0s", topic: topicFiles,
			usage: "How long a tree is kept after it stops being published; 0 removes it at the next cleanup.",
			more:  "The clock starts when the tree is replaced and survives restarts, so readers that still hold the old tree get this much time.",
		},
		{
			name: "keep-worktrees", arg: "N", value: intValue{&c.KeepWorktrees}, def: "0", topic: topicFiles,
			usage: "Keep the N most recently published trees besides the current one, whatever --stale-worktree-timeout says; 0 keeps none.",
			more: "A tree is removed when it is outside the last N and past --stale-worktree-timeout: both rules must agree. " +
				"This bounds disk use by count, so a reader that holds a tree for a while keeps it through a burst of commits; " +
				"git gc still reclaims what removed trees held. git_sync_worktrees_kept reports how many are kept.",
		},
		{
			name: "group-write", value: boolValue{&c.GroupWrite}, def: "false", topic: topicFiles,
			usage: "Make everything git-sync writes (repository, trees, link, files) writable by the group.",
		},
		{
			name: "add-user", value: boolValue{&c.AddUser}, def: "false", topic: topicFiles,
			usage: "Add an /etc/passwd entry for the running user and group if there is none (ssh refuses to run without one).",
		},

		// Sync loop.
		{
			name: "period", arg: "DURATION", value: durationValue{&c.Period}, def: "10s", topic: topicLoop,
			usage: "How long to wait between syncs; at least 10ms.",
		},
		{
			name: "init-period", arg: "DURATION", value: durationValue{&c.InitPeriod}, def: "--period", topic: topicLoop,
			usage: "How long to wait between attempts until the first sync succeeds; at least 10ms when set.",
			more:  "0 means the same as --period.",
		},
		{
			name: "sync-timeout", arg: "DURATION", value: durationValue{&c.SyncTimeout}, def: "120s", topic: topicLoop,
			usage: "The longest one sync attempt may take; git still running then is killed and the attempt fails. At least 10ms.",
		},
		{
			name: "max-failures", arg: "N", value: intValue{&c.MaxFailures}, def: "0", topic: topicLoop,
			usage: "Exit with status 1 when this many syncs in a row have failed; 0 (like 1) exits on the first failure, a negative number retries forever.",
			more:  "As in git-sync v4, the count is reached, not exceeded: --max-failures=3 exits on the third failure in a row. A success resets the count.",
		},
		{
			name: "init-max-failures", arg: "N", value: intValue{&c.InitMaxFailures}, def: "--max-failures", topic: topicLoop,
			usage: "Like --max-failures, but applies only until the first sync succeeds.",
		},
		{
			name: "one-time", value: boolValue{&c.OneTime}, def: "false", topic: topicLoop,
			usage: "Sync once, wait for the hooks that sync fired (one attempt each), and exit: 0 if everything succeeded, 1 if not.",
		},
		{
			name: "sync-on-signal", arg: "SIGNAL", value: stringValue{&p.syncOnSignal}, topic: topicLoop,
			usage: "A signal that starts a sync at once, by name (SIGHUP or HUP) or number (1).",
			more: "A signal that arrives during a sync starts another one right after it. SIGTERM and SIGINT (they stop " +
				"git-sync), SIGCHLD (every git command sends one), SIGURG (the Go runtime uses it) and the uncatchable " +
				"SIGKILL and SIGSTOP are refused.",
		},

		{
			name: "period-jitter", arg: "FRACTION", value: floatValue{&c.PeriodJitter}, def: "0", topic: topicLoop,
			usage: "Spread the waits between syncs over period*(1-FRACTION) to period*(1+FRACTION); 0 to below 1.",
			more: "Replicas restarted together (a rollout, a node drain) then stop polling the git host in lockstep. " +
				"It applies to every wait, backoffs included.",
		},
		{
			name: "failure-backoff-max", arg: "DURATION", value: durationValue{&c.FailureBackoffMax}, def: "0s", topic: topicLoop,
			usage: "After each failed sync in a row, double the wait before the next one, up to this; 0 waits the period as usual.",
			more: "Whatever this says, a remote that answers HTTP 429 or 503 makes git-sync wait at least the period, twice as " +
				"long on each repeat (up to the larger of this and 8 periods), and say so in the log.",
		},
		{
			name: "max-staleness", arg: "DURATION", value: durationValue{&c.MaxStaleness}, def: "0s", topic: topicHTTP,
			usage: "Answer 503 on / (readiness) while the last successful sync is older than this; 0 keeps / at 200 after the first success.",
			more:  "The published tree stays where it is; / answers 200 again after the next success.",
		},
		{
			name: "sync-token-file", arg: "FILE", value: stringValue{&c.SyncTokenFile}, topic: topicHTTP,
			usage: "A file holding the bearer token that POST /sync requires; without it /sync answers 404.",
			more:  "The file is read again when it changes (Kubernetes rotates mounted Secrets); surrounding blanks are ignored.",
		},
		{
			name: "webhook-secret-file", arg: "FILE", value: stringValue{&c.WebhookSecretFile}, topic: topicHTTP,
			usage: "A file holding the shared secret of forge push webhooks (POST /webhook); without it /webhook answers 404.",
			more:  "GitHub, GitLab, Gitea, Forgejo and Bitbucket are recognised by their headers. The file is read again when it changes.",
		},
		{
			name: "webhook-bind", arg: "ADDRESS", value: stringValue{&c.WebhookBind}, topic: topicHTTP,
			usage: "Serve POST /sync and POST /webhook on this address (host:port) instead of --http-bind.",
			more:  "An Ingress can then expose them without exposing readiness, metrics or pprof.",
		},

		// Serving.
		{
			name: "serve-bind", arg: "ADDRESS", value: stringValue{&c.ServeBind}, topic: topicServe,
			usage: "Also serve the published commit read-only over git's smart HTTP protocol on this address (host:port).",
			more: "Other git-syncs (followers), git clone and Airflow's GitDagBundle can then use http://ADDRESS/repo.git " +
				"(any name) instead of the git host: one fetch from the host for any number of readers. See SERVING below.",
		},
		{
			name: "serve-max-requests", arg: "N", value: intValue{&c.ServeMaxRequests}, def: "32", topic: topicServe,
			usage: "Serve at most N git requests at once; more get 503 with Retry-After; 0 means no limit.",
		},
		{
			name: "serve-token-file", arg: "FILE", value: stringValue{&c.ServeTokenFile}, topic: topicServe,
			usage: "A file holding the token that --serve-bind requires, as HTTP Basic password (any user name) or Bearer token.",
			more: "Followers pass it with --password-file (and any --username). The file is read again when it changes; " +
				"surrounding blanks are ignored.",
		},

		// Git.
		{
			name: "git", arg: "PROGRAM", value: stringValue{&c.Git}, def: "git", topic: topicGit,
			usage: "The git program to run: a path, or a name looked up in $PATH.",
			more:  "Each git process is started as this program with the git subcommand as its first argument, so a wrapper script works.",
		},
		{
			name: "git-config", arg: "KEY:VALUE,...", value: stringValue{&p.gitConfig}, topic: topicGit,
			usage: "Extra git configuration as comma-separated key:value pairs; each key is set, replacing earlier values.",
			more:  "See GIT CONFIGURATION SYNTAX below. The settings reach every git process git-sync starts, submodules and hooks included.",
		},
		{
			name: "git-config-add", arg: "KEY:VALUE", value: &listValue{p: &p.gitConfigAdd}, topic: topicGit,
			usage: "One more value for a multi-valued git configuration key (like git config --add); may be repeated.",
			more:  "Same syntax as one --git-config entry. Applied after --git-config, in order. From the environment, one variable may hold a comma-separated list.",
		},
		{
			name: "git-gc", arg: "MODE", value: stringValue{&c.GitGC}, def: GCAlways, topic: topicGit,
			usage: "How to collect garbage after old trees are removed: auto, always, aggressive or off.",
			more:  "It never runs on an idle poll. always keeps the object store within about 4/3 of its size after a full gc: every fetch is kept as a small pack, and a full repack (git repack -a -d, git prune) runs when the store has grown by a third or holds more than 50 packs, and at the first cleanup of each run. auto runs git gc --auto; aggressive runs git gc --aggressive each time.",
		},

		// Hooks.
		{
			name: "exechook-command", arg: "COMMAND", value: stringValue{&c.ExecHook.Command}, topic: topicHooks,
			usage: "A program run after each new commit is published, in the new tree, with $GITSYNC_HASH set; no arguments.",
		},
		{
			name: "exechook-timeout", arg: "DURATION", value: durationValue{&c.ExecHook.Timeout}, def: "30s", topic: topicHooks,
			usage: "How long the exec hook may run before it is killed; at least 1s.",
		},
		{
			name: "exechook-backoff", arg: "DURATION", value: durationValue{&c.ExecHook.Backoff}, def: "3s", topic: topicHooks,
			usage: "How long to wait before running a failed exec hook again; at least 1s.",
		},
		{
			name: "pre-publish-exechook-command", arg: "COMMAND", value: stringValue{&c.PrePublishHook.Command}, topic: topicHooks,
			usage: "A program run in a new tree before it is published, with $GITSYNC_HASH set; what it writes is visible when the link flips.",
			more:  "A failure does not stop the publish; the hook is retried in the background, and --one-time then exits 1.",
		},
		{
			name: "pre-publish-exechook-timeout", arg: "DURATION", value: durationValue{&c.PrePublishHook.Timeout}, def: "30s", topic: topicHooks,
			usage: "How long the pre-publish hook may run before it is killed; at least 1s.",
		},
		{
			name: "pre-publish-exechook-backoff", arg: "DURATION", value: durationValue{&c.PrePublishHook.Backoff}, def: "3s", topic: topicHooks,
			usage: "How long to wait before running a failed pre-publish hook again; at least 1s.",
		},
		{
			name: "publish-gate-command", arg: "COMMAND", value: stringValue{&c.PublishGate.Command}, topic: topicHooks,
			usage: "A program run in a new, complete tree before it is published, with $GITSYNC_HASH set; only exit status 0 publishes it.",
			more: "It runs with the same environment as the exec hooks, and no arguments. Any other exit status, or running past " +
				"--publish-gate-timeout (its whole process group is then killed), rejects the commit: the current tree stays " +
				"published, the rejection is logged as an error (and written to --error-file) with the last lines of the " +
				"program's output, git_sync_gate_rejections_total counts it, and the rejected tree is removed. The verdict is " +
				"remembered per commit: a rejected commit is not gated again until --ref moves. With --one-time a rejection " +
				"exits 1. Unlike --pre-publish-exechook-command, which never stops a publish, the gate decides. With " +
				"--verify-signatures, only a commit whose signature was verified reaches the gate.",
		},
		{
			name: "publish-gate-timeout", arg: "DURATION", value: durationValue{&c.PublishGate.Timeout}, def: "1m", topic: topicHooks,
			usage: "How long the publish gate may run before it is killed and the commit rejected; at least 1s.",
		},
		{
			name: "webhook-url", arg: "URL", value: stringValue{&c.Webhook.URL}, topic: topicHooks,
			usage: "A URL to call after each new commit is published, with the hash in the Gitsync-Hash header.",
		},
		{
			name: "webhook-method", arg: "METHOD", value: stringValue{&c.Webhook.Method}, def: "POST", topic: topicHooks,
			usage: "The HTTP method of the webhook request.",
		},
		{
			name: "webhook-success-status", arg: "CODE", value: intValue{&c.Webhook.SuccessStatus}, def: "200", topic: topicHooks,
			usage: "The HTTP status that means the webhook succeeded; 0 or -1 accepts any response (fire and forget).",
		},
		{
			name: "webhook-timeout", arg: "DURATION", value: durationValue{&c.Webhook.Timeout}, def: "1s", topic: topicHooks,
			usage: "How long to wait for the webhook's response; at least 1s.",
		},
		{
			name: "webhook-backoff", arg: "DURATION", value: durationValue{&c.Webhook.Backoff}, def: "3s", topic: topicHooks,
			usage: "How long to wait before calling a failed webhook again; at least 1s.",
		},

		// Authentication.
		{
			name: "username", arg: "NAME", value: stringValue{&c.Username}, topic: topicAuth,
			usage: "The username for http(s) authentication; needs exactly one of $GITSYNC_PASSWORD and --password-file.",
		},
		{
			name: "password", arg: "PASSWORD", value: secretValue{&c.Password}, topic: topicAuth, envOnly: true,
			deprecated: "it shows the password to every user of the machine; use $GITSYNC_PASSWORD or --password-file instead",
			usage:      "The password or token for --username. Environment only, so it never shows in the process list.",
		},
		{
			name: "password-file", arg: "FILE", value: stringValue{&c.PasswordFile}, topic: topicAuth,
			usage: "A file holding the password or token for --username; read again before every sync, so it can be rotated.",
		},
		{
			name: "credential", arg: "JSON", value: &listValue{p: &p.credentials, secret: true}, topic: topicAuth,
			usage: `Credentials for a URL prefix, as a JSON object {"url", "username", and one of "password" or "password-file"} or a list of them; may be repeated.`,
			more:  "Useful for submodules on other hosts. Prefer password-file: a password given here is visible in the process list.",
		},
		{
			name: "askpass-url", arg: "URL", value: stringValue{&c.AskpassURL}, topic: topicAuth, legacyEnv: []string{"GIT_ASKPASS_URL"},
			usage: "A URL fetched (GET) before every sync; a 200 response with username=... and password=... lines supplies the credentials.",
		},
		{
			name: "cookie-file", value: boolValue{&c.CookieFile}, def: "false", topic: topicAuth, legacyEnv: []string{"GIT_COOKIE_FILE"},
			usage: "Use " + defaultCookieFile + " as git's HTTP cookie file.",
		},
		{
			name: "ssh-key-file", arg: "FILE", value: &listValue{p: &c.SSHKeyFiles, sep: ":"}, def: defaultSSHKeyFile, topic: topicAuth,
			legacyEnv: []string{"GIT_SSH_KEY_FILE"},
			usage:     "A private key for ssh; may be repeated. The environment variable takes a :-separated list.",
		},
		{
			name: "ssh-known-hosts", value: boolValue{&c.SSHKnownHosts}, def: "true", topic: topicAuth,
			legacyEnv: []string{"GIT_SYNC_KNOWN_HOSTS", "GIT_KNOWN_HOSTS"},
			usage:     "Check the ssh server's host key against --ssh-known-hosts-file.",
		},
		{
			name: "ssh-known-hosts-file", arg: "FILE", value: stringValue{&c.SSHKnownHostsFile}, def: defaultSSHKnownHostsFile, topic: topicAuth,
			legacyEnv: []string{"GIT_SSH_KNOWN_HOSTS_FILE"},
			usage:     "The known_hosts file for ssh host key checking.",
		},
		{
			name: "github-app-private-key-file", arg: "FILE", value: stringValue{&c.GitHubApp.PrivateKeyFile}, topic: topicAuth,
			usage: "The private key (PEM) of a GitHub App; git-sync then authenticates as the app's installation.",
			more: "git-sync signs a short-lived token request with the key, exchanges it for an installation token at " +
				"{base}/app/installations/{id}/access_tokens, uses that token as the password of user \"-\", and renews it before it expires.",
		},
		{
			name: "github-app-private-key", arg: "PEM", value: secretValue{&c.GitHubApp.PrivateKey}, topic: topicAuth, envOnly: true,
			usage: "The GitHub App private key itself, instead of --github-app-private-key-file. Environment only.",
		},
		{
			name: "github-app-application-id", arg: "ID", value: int64Value{&c.GitHubApp.ApplicationID}, topic: topicAuth,
			usage: "The GitHub App's application ID; give this or --github-app-client-id with a private key.",
		},
		{
			name: "github-app-client-id", arg: "ID", value: stringValue{&c.GitHubApp.ClientID}, topic: topicAuth,
			usage: "The GitHub App's client ID; give this or --github-app-application-id with a private key.",
		},
		{
			name: "github-app-installation-id", arg: "ID", value: int64Value{&c.GitHubApp.InstallationID}, topic: topicAuth,
			usage: "The installation of the GitHub App whose token to use; required with a private key.",
		},
		{
			name: "github-base-url", arg: "URL", value: stringValue{&c.GitHubApp.BaseURL}, def: defaultGitHubBaseURL, topic: topicAuth,
			usage: "The GitHub API base URL, for GitHub Enterprise Server; a missing final / is added.",
		},

		// Signature verification.
		{
			name: "verify-signatures", arg: "MODE", value: stringValue{&c.VerifySignatures}, topic: topicVerify,
			usage: "Publish only signed commits: \"commit\" requires a good signature on the commit, \"tag\" requires --ref to be an annotated tag with a good signature.",
			more: "Keys come from --allowed-signers-file (SSH signatures) and/or --gpg-keyring-file (OpenPGP); at least one is " +
				"required. Verification fails closed: an unsigned commit or tag, a bad signature, a key that is unknown or " +
				"expired, a lightweight tag, or a key file that cannot be read means the commit is not published, the current " +
				"tree stays, an error says which, and git_sync_signature_failures_total counts it by reason. Only the commit " +
				"(or tag) to be published is verified, never its history: with --depth=1 that is all git-sync has, and with " +
				"any depth the ancestors are not checked. The key files are read again when they change, so keys can be rotated.",
		},
		{
			name: "allowed-signers-file", arg: "FILE", value: stringValue{&c.AllowedSignersFile}, topic: topicVerify,
			usage: "The SSH keys trusted to sign, in the format of git's gpg.ssh.allowedSignersFile (see ssh-keygen(1), ALLOWED SIGNERS).",
			more:  "Options such as valid-before and valid-after are honoured: a signature made outside a key's validity is refused as expired.",
		},
		{
			name: "gpg-keyring-file", arg: "FILE", value: stringValue{&c.GPGKeyringFile}, topic: topicVerify,
			usage: "Armored OpenPGP public keys trusted to sign; git-sync imports them into a private keyring that it creates and removes.",
		},

		// HTTP endpoint.
		{
			name: "http-bind", arg: "ADDRESS", value: stringValue{&c.HTTPBind}, topic: topicHTTP,
			usage: "The address (host:port) to serve HTTP on; empty serves nothing.",
		},
		{
			name: "http-metrics", value: boolValue{&c.HTTPMetrics}, def: "false", topic: topicHTTP,
			usage: "Serve Prometheus metrics at /metrics; needs --http-bind.",
		},
		{
			name: "http-pprof", value: boolValue{&c.HTTPPprof}, def: "false", topic: topicHTTP,
			usage: "Serve Go profiling data at /debug/pprof/; needs --http-bind.",
		},

		// Logging and information.
		{
			name: "verbose", short: "v", arg: "N", value: intValue{&c.Verbosity}, def: "0", topic: topicInfo,
			usage: "How much to log, 0 to 9: 0 logs updates and errors, 5 every git command, 6 their output too, 9 everything.",
		},
		{
			name: "version", value: boolValue{&p.version}, topic: topicInfo, noEnv: true,
			usage: "Print the version and exit.",
		},
		{
			name: "help", short: "h", value: boolValue{&p.help}, topic: topicInfo, noEnv: true,
			usage: "Print this help and exit.",
		},
		{
			name: "?", short: "?", value: boolValue{&p.help}, topic: topicInfo, noEnv: true, hidden: true,
		},
		{
			name: "man", value: boolValue{&p.man}, topic: topicInfo, noEnv: true,
			usage: "Print the full manual and exit.",
		},

		// Deprecated spellings from git-sync v3.
		{
			name: "branch", arg: "BRANCH", value: stringValue{&p.branch}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_BRANCH"}, replaces: "ref", deprecated: "use --ref instead",
			usage: "Sync this branch; same as --ref (with --rev empty or HEAD).",
		},
		{
			name: "rev", arg: "REV", value: stringValue{&p.rev}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_REV"}, replaces: "ref", deprecated: "use --ref instead",
			usage: "Sync this revision; same as --ref when --branch is not set.",
		},
		{
			name: "dest", arg: "PATH", value: stringValue{&p.dest}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_DEST"}, replaces: "link", deprecated: "use --link instead",
			apply: func() { c.Link = p.dest },
			usage: "Same as --link.",
		},
		{
			name: "wait", arg: "SECONDS", value: floatSecondsValue{&p.wait}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_WAIT"}, replaces: "period", deprecated: "use --period instead",
			apply: func() { c.Period = p.wait },
			usage: "Same as --period, in seconds (fractions allowed).",
		},
		{
			name: "timeout", arg: "SECONDS", value: intSecondsValue{&p.timeout}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_TIMEOUT"}, replaces: "sync-timeout", deprecated: "use --sync-timeout instead",
			apply: func() { c.SyncTimeout = p.timeout },
			usage: "Same as --sync-timeout, in whole seconds.",
		},
		{
			name: "max-sync-failures", arg: "N", value: intValue{&p.maxSyncFailures}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_MAX_SYNC_FAILURES"}, replaces: "max-failures", deprecated: "use --max-failures instead",
			apply: func() { c.MaxFailures = p.maxSyncFailures },
			usage: "Same as --max-failures.",
		},
		{
			name: "sync-hook-command", arg: "COMMAND", value: stringValue{&p.syncHookCommand}, topic: topicOldFlags,
			legacyEnv: []string{"GIT_SYNC_HOOK_COMMAND"}, replaces: "exechook-command", deprecated: "use --exechook-command instead",
			apply: func() { c.ExecHook.Command = p.syncHookCommand },
			usage: "Same as --exechook-command.",
		},
		{
			name: "v", arg: "N", value: intValue{&p.v}, topic: topicOldFlags,
			replaces: "verbose", deprecated: "use -v or --verbose instead",
			apply: func() { c.Verbosity = p.v },
			usage: "Same as -v.",
		},
		{
			name: "ssh", value: boolValue{&p.ssh}, topic: topicOldFlags,
			noEnv: true, legacyEnv: []string{"GIT_SYNC_SSH"}, deprecated: "it has no effect (ssh is used when --repo asks for it)",
			usage: "Ignored: ssh is used whenever --repo is an ssh URL.",
		},
		{
			name: "change-permissions", arg: "MODE", value: stringValue{&p.changePermissions}, topic: topicOldFlags,
			noEnv: true, legacyEnv: []string{"GIT_SYNC_PERMISSIONS"}, rejected: "use --group-write (or $GITSYNC_GROUP_WRITE) instead",
			usage: "No longer supported; rejected with a pointer to --group-write.",
		},
	}
}
