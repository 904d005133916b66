// Package config turns git-sync's command line and environment into one
// validated Config value.
//
// It is the only package that reads flags or environment variables. Every
// other package receives the parts of Config it needs, already checked, so
// that a bad value fails at startup with a message naming the flag instead of
// surfacing later as a confusing git error.
package config

import (
	"syscall"
	"time"

	"gitsync/internal/gitconfig"
	"gitsync/internal/secret"
)

// Config is git-sync's complete, validated configuration. Defaults are
// already applied and derived values resolved (InitPeriod falls back to
// Period, InitMaxFailures to MaxFailures, Link to the leaf of Repo, Git to an
// absolute path).
type Config struct {
	Repo string // URL or scp-like path, credentials removed (see Username/Password)
	Ref  string // HEAD, branch, tag, or full hash
	Root string // as given (absolute or relative); canonicalised by the repo package
	Link string // as given or derived; relative means relative to Root

	Period          time.Duration
	InitPeriod      time.Duration
	SyncTimeout     time.Duration
	MaxFailures     int // negative = retry forever
	InitMaxFailures int // before the first success
	OneTime         bool

	Depth              int    // 0 = full history
	Filter             string // partial clone filter, empty = none
	Submodules         string // SubmodulesRecursive, SubmodulesShallow or SubmodulesOff
	SparseCheckoutFile string
	GitGC              string // GCAuto, GCAlways, GCAggressive or GCOff
	Git                string // absolute path of the git program
	GitConfig          []GitConfigEntry

	StaleWorktreeTimeout time.Duration
	TouchFile            string // as given; relative means relative to Root
	ErrorFile            string // as given; relative means relative to Root
	GroupWrite           bool
	AddUser              bool
	SyncOnSignal         syscall.Signal // 0 = none

	ExecHook       HookConfig
	PrePublishHook HookConfig
	Webhook        WebhookConfig

	// PublishGate blocks a publish unless its command exits 0 (Backoff
	// unused). An empty Command means no gate.
	PublishGate HookConfig
	// VerifySignatures is VerifyCommit, VerifyTag or "" (no verification).
	VerifySignatures   string
	AllowedSignersFile string // SSH signers, git's gpg.ssh.allowedSignersFile format
	GPGKeyringFile     string // armored OpenPGP public keys
	// KeepWorktrees is how many previously published trees are kept besides
	// the current one, whatever StaleWorktreeTimeout says.
	KeepWorktrees int

	Username     string
	Password     secret.Secret
	PasswordFile string
	Credentials  []Credential
	AskpassURL   string
	CookieFile   bool

	SSHKeyFiles       []string
	SSHKnownHosts     bool
	SSHKnownHostsFile string

	GitHubApp GitHubAppConfig

	HTTPBind    string
	HTTPMetrics bool
	HTTPPprof   bool

	// Status, staleness and triggers (issue 12).
	MaxStaleness      time.Duration // 0: readiness never looks at staleness
	SyncTokenFile     string        // "" turns POST /sync off
	WebhookSecretFile string        // "" turns POST /webhook off
	WebhookBind       string        // "" serves /sync and /webhook on --http-bind
	PeriodJitter      float64       // 0 <= f < 1
	FailureBackoffMax time.Duration // 0: no doubling after failures

	// Serving the published commit to other git clients (issue 13).
	ServeBind        string // "" serves nothing
	ServeMaxRequests int    // requests served at once; 0: no limit
	ServeTokenFile   string // "" serves without authentication

	Verbosity int
}

// Values of Config.Submodules.
const (
	SubmodulesRecursive = "recursive"
	SubmodulesShallow   = "shallow"
	SubmodulesOff       = "off"
)

// Values of Config.VerifySignatures.
const (
	VerifyCommit = "commit"
	VerifyTag    = "tag"
)

// Values of Config.GitGC.
const (
	GCAuto       = "auto"
	GCAlways     = "always"
	GCAggressive = "aggressive"
	GCOff        = "off"
)

// GitConfigEntry is one key/value from --git-config or --git-config-add.
type GitConfigEntry = gitconfig.Entry

// HookConfig configures an exec hook. An empty Command means no hook.
type HookConfig struct {
	Command string
	Timeout time.Duration
	Backoff time.Duration
}

// WebhookConfig configures the webhook. An empty URL means no webhook.
type WebhookConfig struct {
	URL           string
	Method        string
	SuccessStatus int // 0 or -1: fire and forget
	Timeout       time.Duration
	Backoff       time.Duration
}

// Credential gives a username and password for URLs under URL.
// Exactly one of Password and PasswordFile is set.
type Credential struct {
	URL          string        `json:"url"`
	Username     string        `json:"username"`
	Password     secret.Secret `json:"-"`
	PasswordFile string        `json:"password-file"`
}

// GitHubAppConfig configures GitHub App authentication. It is enabled when
// PrivateKey or PrivateKeyFile is set.
type GitHubAppConfig struct {
	PrivateKey     secret.Secret // from $GITSYNC_GITHUB_APP_PRIVATE_KEY
	PrivateKeyFile string
	ApplicationID  int64 // xor ClientID
	ClientID       string
	InstallationID int64
	BaseURL        string // always ends with "/"
}

// Enabled reports whether GitHub App authentication is configured.
func (g GitHubAppConfig) Enabled() bool { return !g.PrivateKey.IsZero() || g.PrivateKeyFile != "" }
