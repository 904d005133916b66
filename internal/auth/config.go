package auth

import "gitsync/internal/secret"

// Config is what auth needs of git-sync's configuration: the repository
// and every source of credentials for it and for other URLs. It is auth's
// own type, so that this package depends on no more than it uses;
// internal/app fills it from the parsed flags, tests fill it directly.
// Values are taken as validated (exactly one of Password and PasswordFile
// with Username, and so on).
type Config struct {
	// Repo is --repo, with any credentials already taken out of it.
	Repo string

	// Username with Password ($GITSYNC_PASSWORD) or PasswordFile (read
	// before every sync) answer for Repo.
	Username     string
	Password     secret.Secret
	PasswordFile string
	// AskpassURL, when set, is called before every sync; its answer is for
	// Repo.
	AskpassURL string
	// GitHubApp, when enabled, provides an installation token for Repo.
	GitHubApp GitHubApp
	// Credentials answer for the URLs they name (--credential).
	Credentials []Credential

	// CookieFile is the file git uses as http.cookieFile; "" for none.
	CookieFile string

	// SSHKeyFiles are the identity files for ssh, in order.
	SSHKeyFiles []string
	// SSHKnownHosts turns strict host key checking on, against
	// SSHKnownHostsFile.
	SSHKnownHosts     bool
	SSHKnownHostsFile string
}

// Credential is one --credential entry: a username and a password (or a
// file holding it, read before every sync) for the URLs under URL.
type Credential struct {
	URL          string
	Username     string
	Password     secret.Secret
	PasswordFile string
}

// GitHubApp configures GitHub App authentication.
type GitHubApp struct {
	// PrivateKey or PrivateKeyFile (PEM, PKCS#1 or PKCS#8) is the app's
	// key; setting either enables the app.
	PrivateKey     secret.Secret
	PrivateKeyFile string
	// ApplicationID or ClientID identifies the app (the JWT's issuer).
	ApplicationID int64
	ClientID      string
	// InstallationID is the installation whose token is asked for.
	InstallationID int64
	// BaseURL is the GitHub API's base URL; "" means api.github.com.
	BaseURL string
}

// Enabled reports whether a key was given.
func (g GitHubApp) Enabled() bool { return !g.PrivateKey.IsZero() || g.PrivateKeyFile != "" }

// hasCredentials reports whether c gives git anything to ask for: only
// then does git-sync need to serve its credential helper.
func (c Config) hasCredentials() bool {
	return c.Username != "" || c.AskpassURL != "" || c.GitHubApp.Enabled() || len(c.Credentials) > 0
}
